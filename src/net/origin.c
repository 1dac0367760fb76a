#include <string.h>
#include <strings.h>
#include "net/origin.h"

/* Printable ASCII without spaces: what an Origin may hold, and all that is ever echoed into a header. */
static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* The authority of "scheme://authority" (no path), or NULL. */
static const char *authority_of(const char *origin)
{
    const char *sep = strstr(origin, "://");
    if (sep == NULL || sep == origin || sep[3] == '\0' || strchr(sep + 3, '/') != NULL)
        return NULL;
    return sep + 3;
}

/* entry with one '*' against origin: the star covers one or more characters, none of them '/' or ':'. */
static bool glob_match(const char *entry, const char *star, const char *origin, size_t len)
{
    size_t pre = (size_t)(star - entry), post = strlen(star + 1);
    if (len < pre + post + 1 || strncasecmp(origin, entry, pre) != 0 || strcasecmp(origin + len - post, star + 1) != 0)
        return false;
    for (size_t i = pre; i < len - post; i++)
        if (origin[i] == '/' || origin[i] == ':')
            return false;
    return true;
}

rt_origin_verdict_t rt_origin_check(char *const *allowed, size_t n, bool any_origin, const char *origin, const char *host)
{
    if (origin == NULL)
        return RT_ORIGIN_ABSENT;
    size_t len = strlen(origin);
    if (len == 0 || len > RT_ORIGIN_MAX || !printable(origin, len))
        return RT_ORIGIN_FOREIGN;
    if (any_origin)
        return RT_ORIGIN_ALLOWED;
    const char *authority = authority_of(origin);
    if (authority != NULL && host != NULL && strcasecmp(authority, host) == 0)
        return RT_ORIGIN_ALLOWED;
    for (size_t i = 0; i < n; i++) {
        const char *entry = allowed[i], *star = strchr(entry, '*');
        if (strcmp(entry, "*") == 0 || (star == NULL && strcasecmp(entry, origin) == 0) ||
            (star != NULL && glob_match(entry, star, origin, len)))
            return RT_ORIGIN_ALLOWED;
    }
    return RT_ORIGIN_FOREIGN;
}

bool rt_origin_entry_valid(const char *entry)
{
    size_t len = strlen(entry);
    if (strcmp(entry, "*") == 0 || strcmp(entry, "null") == 0)
        return true;
    if (len == 0 || len > RT_ORIGIN_MAX || !printable(entry, len) || authority_of(entry) == NULL)
        return false;
    const char *star = strchr(entry, '*');
    return star == NULL || (star >= authority_of(entry) && strchr(star + 1, '*') == NULL);
}
