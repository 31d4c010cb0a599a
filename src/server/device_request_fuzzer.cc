// Fuzzes what a stranger controls in a device request: the QP-* headers, the target and the
// body of POST /v1/enroll and /v1/reports, through DeviceGate (signature, clock window,
// replay cache, enrollment token parsing) over an in-memory database.
// Input: fields separated by '\n': device, time, nonce, signature, target, body (the rest).
#include <memory>
#include <string>
#include <string_view>

#include "server/device_gate.h"

namespace {

struct World {
  qp::SimulatedClock clock{std::chrono::system_clock::from_time_t(1800000000)};
  std::unique_ptr<qp::server::ReportStore> store =
      qp::server::OpenSqliteReportStore(":memory:").value();
  qp::server::DeviceGate gate{store.get(), &clock};
  World() { (void)gate.CreateEnrollment(3, std::chrono::hours(24), false, "fuzz"); }
};

std::string_view Next(std::string_view& in) {
  std::size_t nl = in.find('\n');
  std::string_view field = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return field;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  qp::server::SignedRequest request;
  request.signature.device = std::string(Next(in));
  request.signature.time = std::string(Next(in));
  request.signature.nonce = std::string(Next(in));
  request.signature.signature = std::string(Next(in));
  request.target = Next(in);
  request.body = in;
  request.method = "POST";
  (void)world.gate.Enroll(request);
  (void)world.gate.Authenticate(request);
  return 0;
}
