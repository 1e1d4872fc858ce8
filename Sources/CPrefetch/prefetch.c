// prefetch.h is header-only (an inline function); SwiftPM wants a source file per C target.
#include "prefetch.h"
