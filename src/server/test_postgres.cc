#include "server/test_postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "core/test_process.h"

namespace qp::server {
namespace {

std::string FindPgBin() {
  for (const char* v : {"17", "16", "15", "14"}) {
    std::string bin = std::string("/usr/lib/postgresql/") + v + "/bin";
    if (std::filesystem::exists(bin + "/pg_ctl")) return bin;
  }
  return "";
}

}  // namespace

TestPostgres::TestPostgres() {
  bin_ = FindPgBin();
  if (bin_.empty()) {
    error_ = "PostgreSQL server binaries not found (scripts/setup.sh installs postgresql)";
    return;
  }
  as_postgres_ = ::geteuid() == 0;
  data_ = dir_.Sub("data");
  socket_dir_ = dir_.Sub("sock");
  std::filesystem::create_directories(socket_dir_);
  ::chmod(dir_.path().c_str(), 0755);
  std::vector<std::string> prefix;
  if (as_postgres_) {
    prefix = {"runuser", "-u", "postgres", "--"};
    RunCommand({"chown", "-R", "postgres:postgres", dir_.path()});
  }
  auto run = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = prefix;
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  };
  auto init = run({bin_ + "/initdb", "-D", data_, "-A", "trust", "-U", "postgres", "--no-sync"});
  if (init.exit_code != 0) {
    error_ = "initdb failed: " + init.output;
    return;
  }
  int port = 20000 + static_cast<int>(::getpid() % 20000);
  auto start = run(
      {bin_ + "/pg_ctl", "-D", data_, "-w", "-l", dir_.Sub("pg.log"), "-o",
       "-k " + socket_dir_ + " -p " + std::to_string(port) + " -c listen_addresses='' -c fsync=on",
       "start"});
  if (start.exit_code != 0) {
    error_ = "pg_ctl start failed: " + start.output;
    return;
  }
  url_ = "postgresql:///postgres?host=" + socket_dir_ + "&port=" + std::to_string(port) +
         "&user=postgres";
}

TestPostgres::~TestPostgres() {
  if (url_.empty()) return;
  std::vector<std::string> argv;
  if (as_postgres_) argv = {"runuser", "-u", "postgres", "--"};
  argv.insert(argv.end(), {bin_ + "/pg_ctl", "-D", data_, "-m", "fast", "-w", "stop"});
  RunCommand(argv);
}

}  // namespace qp::server
