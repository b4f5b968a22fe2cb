/*
 * Container health and lifecycle in pod-init (the Spherelet Agent's part of a vSphere Pod): the
 * types podinit.c embeds in each container and the hooks its parser and supervise loop call.
 * The code is in probes.c, #included at the end of podinit.c.
 *
 * Description directives (values %XX-encoded, tokens separated by single spaces):
 *   deadline S                                        pod level: activeDeadlineSeconds left
 *   init 1                                            an init container (run in order, to success)
 *   probe KIND DELAY PERIOD TIMEOUT SUCC FAIL ACTION  KIND liveness|readiness|startup
 *   hook poststart|prestop ACTION
 * ACTION is `exec ARG...`, `http HOST PORT PATH HEADER...` (HEADER "Name: value") or
 * `tcp HOST PORT`; HOST `-` is the pod's own address.
 */
#ifndef NESTLAB_PROBES_H
#define NESTLAB_PROBES_H

#include <ctype.h>
#include <strings.h>
#include <sys/types.h>

#define MAX_ACTION_ARGS 16
#define MAX_HEADERS 8

enum probe_kind { LIVENESS, READINESS, STARTUP, NPROBES };
enum action_type { ACT_NONE, ACT_EXEC, ACT_HTTP, ACT_TCP };
enum hook_kind { POST_START, PRE_STOP };

/* What a probe or a hook does. */
struct action {
	enum action_type type;
	char *argv[MAX_ACTION_ARGS + 1]; /* exec */
	int argc;
	char *host;                      /* http/tcp; NULL: the pod's address */
	int port;
	char *path;                      /* http */
	char *headers[MAX_HEADERS];
	int nheaders;
};

/* One run of an action in a forked child: its pid, message pipe and hard deadline. */
struct run {
	pid_t pid;
	pid_t target;             /* the container process it is about: a stale result is dropped */
	int out;
	long long kill_at_ms;
};

struct probe {
	struct action act;
	int delay_s, period_s, timeout_s, success_threshold, failure_threshold;
	int successes, failures;  /* consecutive attempts */
	int result;               /* -1 unknown, 0 failure, 1 success (after thresholds) */
	long long next_ms;
	struct run run;
};

struct lifecycle {
	int init;                 /* an init container */
	struct probe probes[NPROBES];
	struct action hooks[2];
	struct run hook;          /* the hook in flight */
	int hook_kind;
	int started;              /* the startup probe succeeded (or there is none) */
	int killing;              /* pod-init is stopping this container (preStop, TERM, KILL) */
	int restart_after_kill;   /* the kill was for a failed probe or hook: restart per policy */
	long long term_grace_ms;  /* after the preStop hook: time left before SIGKILL */
	long long kill_at_ms;     /* SIGKILL at this time (0: not yet TERMed) */
	long long stop_began_ms;   /* when the stop began (grace counts from it) */
};

struct container;
static int lifecycle_directive(struct container *c, const char *key, char *value);
static void lifecycle_started(struct container *c);
static void lifecycle_exited(struct container *c);
static void lifecycle_reaped(pid_t pid, int status);
static int wants_restart(struct container *c, int code);
static void stop_all(void);
static long long lifecycle_tick(long long now, int *stopping, long long *stop_deadline);
static void report_done(int failed);

#endif
