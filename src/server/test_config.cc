#include "server/test_config.h"

#include <sys/stat.h>

#include <cerrno>
#include <string>

namespace qp::server {

Result<ServerConfig> TestServerConfig(const TestDir& dir, const online::RepoPaths& paths) {
  WriteTestFile(dir.Sub("token"), std::string(kTestAdminToken) + "\n");
  if (::chmod(dir.Sub("token").c_str(), 0600) != 0) return ErrnoError(errno, "chmod token");
  ServerConfig config;
  config.listen_address = "127.0.0.1";
  config.listen_port = 0;
  config.repo_dir = paths.repo_dir;
  config.keys_dir = paths.keys_dir;
  config.admin_token_file = dir.Sub("token");
  config.audit_log = dir.Sub("audit.log");
  return config;
}

}  // namespace qp::server
