// Minimal gloo declarations (see ../context.h): nothing of gloo/common/error.h is used by the shim.
#pragma once
