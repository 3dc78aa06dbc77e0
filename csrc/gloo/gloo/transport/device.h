// Minimal declarations of gloo's transport types (see ../context.h): only held through smart
// pointers by c10d's ProcessGroupGloo, never used by the shim.
#pragma once

namespace gloo {
namespace transport {

class Device;
class UnboundBuffer;

} // namespace transport
} // namespace gloo
