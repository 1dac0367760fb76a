/* Umbrella header: the whole public API of librealtime. Declares nothing itself. */
#ifndef REALTIME_H
#define REALTIME_H

#include "realtime/error.h"
#include "realtime/bytes.h"
#include "realtime/event.h"
#include "realtime/channel.h"
#include "realtime/filter.h"
#include "realtime/broadcaster.h"
#include "realtime/history.h"

#endif
