// Test helper: a server configuration over a test repository, with an admin token and an
// audit log of its own, as the server's tests start from.
#pragma once

#include "core/result.h"
#include "core/test_dir.h"
#include "online/repo_dir.h"
#include "server/server_config.h"

namespace qp::server {

inline constexpr const char* kTestAdminToken = "0123456789abcdef0123456789abcdef";

// The repository at `paths` (made by the caller), the admin token kTestAdminToken in
// dir/token (mode 0600), the audit log at dir/audit.log; listening on 127.0.0.1 at a port
// the system picks. Fails if the token file cannot be made private.
Result<ServerConfig> TestServerConfig(const TestDir& dir, const online::RepoPaths& paths);

}  // namespace qp::server
