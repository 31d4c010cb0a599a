// Test helper: a private PostgreSQL cluster (Debian's postgresql package) started for the
// test in a temporary directory on a Unix socket, and stopped afterwards. As root it runs
// as the postgres user (initdb refuses root).
#pragma once

#include <string>

#include "core/test_dir.h"

namespace qp::server {

class TestPostgres {
 public:
  TestPostgres();
  ~TestPostgres();
  // Empty when the cluster could not start (the reason is in error()).
  const std::string& url() const { return url_; }
  const std::string& error() const { return error_; }

 private:
  TestDir dir_;
  std::string data_, socket_dir_, url_, error_, bin_;
  bool as_postgres_ = false;
};

}  // namespace qp::server
