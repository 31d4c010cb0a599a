// Test helper: a raw HTTP/1.1 client over loopback sockets, as a hostile or ordinary client
// would speak to quietpatch-server (no client library between the test and the wire).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace qp::server {

struct Reply {
  int status = 0;  // 0: no answer
  std::string headers, body;
  // The value of header `name` (lower case), "" when absent.
  std::string Header(const std::string& name) const;
};

// A connected loopback socket, or -1.
int Connect(int port);

// One request on its own connection ("Connection: close" is added); `headers` are whole
// lines ("Name: value").
Reply Http(int port, const std::string& method, const std::string& target,
           const std::string& body = "", const std::vector<std::string>& headers = {});

// True once `pred` holds, polling every 20 ms for at most `limit`.
bool Eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds limit = std::chrono::milliseconds(3000));

}  // namespace qp::server
