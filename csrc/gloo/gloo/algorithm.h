// Minimal gloo declarations (see context.h): nothing of gloo/algorithm.h is used by the shim.
#pragma once

#include "gloo/context.h"
