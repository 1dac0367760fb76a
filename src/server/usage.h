/*
 * The realtime binary's commands and options as data: `realtime --help`, `realtime COMMAND --help` and the
 * realtime(1) page are printed from the same table, and the configuration keys come from src/server/config.c,
 * so the help and the manual cannot drift apart.
 */
#ifndef RT_SERVER_USAGE_H
#define RT_SERVER_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/** One option of a command: "--url URL" and what it does. */
typedef struct st_rt_usage_opt_t {
    const char *opt;
    const char *help;
} rt_usage_opt_t;

/** One command; the text fields are plain sentences (newlines only where --help breaks a line). */
typedef struct st_rt_usage_cmd_t {
    const char *name;              /**< "publish" */
    const char *summary;           /**< one line for the command list */
    const char *const *synopsis;   /**< NULL-terminated, each after "realtime " */
    const char *description;       /**< a paragraph */
    const rt_usage_opt_t *opts;    /**< NULL-terminated by a NULL opt, or NULL */
    bool config_keys;              /**< the configuration keys are its options (serve, check-config) */
} rt_usage_cmd_t;

/** The commands, in --help order; the last entry has a NULL name. */
extern const rt_usage_cmd_t rt__usage_commands[];
/** The program's one-line description ("Real-time event broadcasting server ..."). */
extern const char rt__usage_tagline[];

/** The command named name, or NULL. */
const rt_usage_cmd_t *rt__usage_find(const char *name);
/** Prints `realtime --help`. */
void rt__usage_main(FILE *out);
/** Prints `realtime CMD --help`. */
void rt__usage_command(FILE *out, const rt_usage_cmd_t *cmd);
/**
 * Prints a manual page as roff: section "1" (realtime(1): commands, options, environment, exit status) or "5"
 * (realtime.json(5): every configuration key). version goes into the page's footer. Returns 0, or -1 for an
 * unknown section.
 */
int rt__manpage(FILE *out, const char *section, const char *version);

#endif
