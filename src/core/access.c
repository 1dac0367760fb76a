#include <string.h>
#include "core/access.h"
#include "realtime/channel.h"

/* The bool at offset flag of a namespace. */
static bool flag_of(const rt_namespace_t *ns, size_t flag)
{
    return *(const bool *)((const char *)ns + flag);
}

/*
 * True when every namespace the name reaches has the flag set to `want`. The name reaches, in order, each entry
 * whose pattern shares a channel with it, up to the first entry that covers it (no channel of the name is left for
 * later entries); when none covers it, the defaults take what is left.
 */
static bool all_reached(const rt_access_t *a, const char *name, size_t len, size_t flag, bool want)
{
    for (size_t i = 0; i < a->n_namespaces; i++) {
        const rt_namespace_t *ns = &a->namespaces[i];
        size_t plen = strlen(ns->pattern);
        if (!rt_pattern_intersects(ns->pattern, plen, name, len))
            continue;
        if (flag_of(ns, flag) != want)
            return false;
        if (rt_pattern_covers(ns->pattern, plen, name, len))
            return true;
    }
    return flag_of(&rt_namespace_defaults, flag) == want;
}

bool rt_namespace_any_off(const rt_access_t *a, const char *name, size_t len, size_t flag)
{
    return !all_reached(a, name, len, flag, true);
}

static bool covered_by(const char *const *names, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (rt_pattern_covers(names[i], strlen(names[i]), name, len))
            return true;
    return false;
}

bool rt_access_read(const rt_access_t *a, const rt_grant_t *g, const char *name, size_t len, const char **why)
{
    if (a->insecure)
        return true;
    bool admin = g != NULL && g->admin;
    *why = NULL;
    if (admin)
        return true;
    if (rt_channel_is_all(name, len) || (len == 1 && name[0] == '>')) {
        *why = "this channel needs an admin token";
        return false;
    }
    if (!all_reached(a, name, len, offsetof(rt_namespace_t, admin_only), false)) {
        *why = "this channel is in an admin-only namespace";
        return false;
    }
    if (all_reached(a, name, len, offsetof(rt_namespace_t, anonymous), true))
        return true;
    if (g != NULL && (covered_by(g->subscribe, g->n_subscribe, name, len) || covered_by(g->channels, g->n_channels, name, len) ||
                      (g->channel != NULL && strlen(g->channel) == len && memcmp(g->channel, name, len) == 0)))
        return true;
    bool grants_nothing = g == NULL || (g->n_subscribe == 0 && g->n_channels == 0 && g->channel == NULL);
    *why = grants_nothing ? "this channel needs a token that grants it" : "the token does not grant this channel";
    return false;
}
