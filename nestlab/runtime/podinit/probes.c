/*
 * Probes, init containers, lifecycle hooks, per-container kills and activeDeadlineSeconds: the part
 * of the Spherelet Agent that vSphere runs inside the pod, with the kubelet's semantics.
 *
 * Every probe or hook runs in a forked child so that the supervise loop never blocks: exec enters
 * the container's mount and pid namespaces and its root (setns + chroot) and runs the command as
 * the container's user; httpGet and tcpSocket connect from pod-init (the pod has one network
 * stack). The child bounds itself with alarm(timeout) and writes its message to a pipe; the loop
 * reaps it. Results follow the kubelet's prober: consecutive runs against success/failure
 * thresholds, readiness starts failed, liveness starts passed, startup gates the other two, a
 * liveness or startup failure kills the container (preStop, SIGTERM, grace, SIGKILL) and the
 * restart policy decides the rest. Events go to the host as JSON lines (probe, killing, hook, and
 * deadline the moment activeDeadlineSeconds ends the pod, before its containers are stopped).
 *
 * #included at the end of podinit.c (it uses its globals); see probes.h for the directives.
 */

#define MSG_MAX 240            /* message bytes kept from a probe (an Event message, not a log) */
#define ESC_MAX 300            /* the message JSON-escaped: keeps an event line under 512 bytes */
#define TIMEOUT_CODE 3         /* a runner's exit status meaning "timed out" */
#define HARD_KILL_SLACK_MS 2000 /* a runner still alive this long after its timeout is SIGKILLed */
#define MIN_TERM_GRACE_MS 2000 /* the kubelet's minimum grace after a preStop hook used it all */
#define POST_START_TIMEOUT_S 120 /* the kubelet waits for postStart unbounded; this VM does not */
#define PROBE_AGENT "kube-probe/1.33"

static long deadline_s;
static long long deadline_at_ms;
static int deadline_hit, apps_started;
static char pod_ip[32];
static volatile pid_t helper; /* in a runner: the exec'd command, killed on timeout */
static const char *const probe_names[NPROBES] = {"liveness", "readiness", "startup"};
static const char *const hook_names[2] = {"postStart", "preStop"};

/* ---- description ---- */

/* The next space-separated token of *cursor, %XX-decoded in place; NULL at the end. */
static char *token(char **cursor)
{
	char *s = *cursor, *end;
	if (!s || !*s)
		return NULL;
	end = strchr(s, ' ');
	if (end) {
		*end = 0;
		*cursor = end + 1;
	} else {
		*cursor = s + strlen(s);
	}
	return decode(s);
}

static int parse_action(struct action *a, char *rest)
{
	char *kind = token(&rest), *t, *host, *port;
	memset(a, 0, sizeof *a);
	if (!kind)
		return -1;
	if (!strcmp(kind, "exec")) {
		a->type = ACT_EXEC;
		while ((t = token(&rest)) && a->argc < MAX_ACTION_ARGS)
			a->argv[a->argc++] = t;
		return a->argc ? 0 : -1;
	}
	if (strcmp(kind, "http") && strcmp(kind, "tcp"))
		return -1;
	a->type = kind[0] == 'h' ? ACT_HTTP : ACT_TCP;
	host = token(&rest);
	port = token(&rest);
	if (!host || !port)
		return -1;
	a->host = strcmp(host, "-") ? host : NULL;
	a->port = atoi(port);
	if (a->type == ACT_HTTP) {
		a->path = token(&rest);
		if (!a->path || !*a->path)
			a->path = "/";
		while ((t = token(&rest)) && a->nheaders < MAX_HEADERS)
			a->headers[a->nheaders++] = t;
	}
	return a->port > 0 && a->port < 65536 ? 0 : -1;
}

static int lifecycle_directive(struct container *c, const char *key, char *value)
{
	char *rest = value, *kind;
	if (!c) {
		if (strcmp(key, "deadline"))
			return 0;
		deadline_s = atol(value);
		return 1;
	}
	struct lifecycle *lc = &c->lc;
	if (!strcmp(key, "init")) {
		lc->init = atoi(value);
		return 1;
	}
	if (!strcmp(key, "probe")) {
		int k = -1;
		kind = token(&rest);
		for (int i = 0; kind && i < NPROBES; i++)
			if (!strcmp(kind, probe_names[i]))
				k = i;
		if (k < 0)
			return say("container %s: unknown probe %s", c->name, kind ? kind : ""), 1;
		struct probe *p = &lc->probes[k];
		int *fields[5] = {&p->delay_s, &p->period_s, &p->timeout_s, &p->success_threshold, &p->failure_threshold};
		for (int i = 0; i < 5; i++) {
			char *t = token(&rest);
			*fields[i] = t ? atoi(t) : 0;
		}
		if (parse_action(&p->act, rest) < 0) {
			say("container %s: %s probe is malformed: ignored", c->name, probe_names[k]);
			p->act.type = ACT_NONE;
		}
		if (p->period_s < 1) p->period_s = 1;
		if (p->timeout_s < 1) p->timeout_s = 1;
		if (p->success_threshold < 1) p->success_threshold = 1;
		if (p->failure_threshold < 1) p->failure_threshold = 1;
		return 1;
	}
	if (!strcmp(key, "hook")) {
		kind = token(&rest);
		int h = kind && !strcmp(kind, "poststart") ? POST_START : kind && !strcmp(kind, "prestop") ? PRE_STOP : -1;
		if (h < 0 || parse_action(&lc->hooks[h], rest) < 0) {
			say("container %s: hook %s is malformed: ignored", c->name, kind ? kind : "");
			if (h >= 0)
				lc->hooks[h].type = ACT_NONE;
		}
		return 1;
	}
	return 0;
}

/* ---- runners (forked children) ---- */

static void json_escape(char *dst, size_t size, const char *src)
{
	size_t n = 0;
	for (; *src && n + 7 < size; src++) {
		unsigned char ch = (unsigned char)*src;
		if (ch == '"' || ch == '\\') {
			dst[n++] = '\\';
			dst[n++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			n += snprintf(dst + n, size - n, "\\u%04x", ch);
		} else {
			dst[n++] = (char)ch;
		}
	}
	dst[n] = 0;
}

/* strerror as Go prints it (lower case), for messages shaped like the kubelet's. */
static const char *go_error(int err)
{
	static char text[96];
	snprintf(text, sizeof text, "%s", strerror(err));
	text[0] = (char)tolower((unsigned char)text[0]);
	return text;
}

static const char *target_host(const struct action *a)
{
	return a->host ? a->host : pod_ip[0] ? pod_ip : "127.0.0.1";
}

static void on_alarm(int sig)
{
	(void)sig;
	if (helper > 0)
		kill(helper, SIGKILL);
	_exit(TIMEOUT_CODE);
}

static int dial(const struct action *a, char *msg, size_t size, const char *prefix)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port)};
	const char *host = target_host(a);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(msg, size, "%sdial tcp: lookup %s: no such host", prefix, host);
		return -1;
	}
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		snprintf(msg, size, "%sdial tcp %s:%d: connect: %s", prefix, host, a->port, go_error(errno));
		return -1;
	}
	return s;
}

static int do_tcp(const struct action *a, char *msg, size_t size)
{
	int s = dial(a, msg, size, "");
	if (s < 0)
		return 1;
	close(s);
	return 0;
}

static int do_http(const struct action *a, char *msg, size_t size)
{
	char prefix[128], req[2048], resp[512];
	const char *host = target_host(a);
	int n, has_host = 0, has_agent = 0, has_accept = 0, code = 0;
	snprintf(prefix, sizeof prefix, "Get \"http://%s:%d%s\": ", host, a->port, a->path);
	int s = dial(a, msg, size, prefix);
	if (s < 0)
		return 1;
	n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n", a->path);
	for (int i = 0; i < a->nheaders && n < (int)sizeof req; i++) {
		has_host |= !strncasecmp(a->headers[i], "host:", 5);
		has_agent |= !strncasecmp(a->headers[i], "user-agent:", 11);
		has_accept |= !strncasecmp(a->headers[i], "accept:", 7);
		n += snprintf(req + n, sizeof req - n, "%s\r\n", a->headers[i]);
	}
	if (!has_host && n < (int)sizeof req)
		n += snprintf(req + n, sizeof req - n, "Host: %s:%d\r\n", host, a->port);
	if (!has_agent && n < (int)sizeof req)
		n += snprintf(req + n, sizeof req - n, "User-Agent: %s\r\n", PROBE_AGENT);
	if (!has_accept && n < (int)sizeof req)
		n += snprintf(req + n, sizeof req - n, "Accept: */*\r\n");
	if (n < (int)sizeof req)
		n += snprintf(req + n, sizeof req - n, "Connection: close\r\n\r\n");
	if (n >= (int)sizeof req)
		return snprintf(msg, size, "%shttp: request headers too long", prefix), 1;
	for (int off = 0; off < n;) {
		ssize_t w = write(s, req + off, n - off);
		if (w <= 0)
			return snprintf(msg, size, "%swrite: %s", prefix, go_error(errno)), 1;
		off += w;
	}
	size_t len = 0;
	ssize_t r;
	while (len < sizeof resp - 1 && (r = read(s, resp + len, sizeof resp - 1 - len)) > 0) {
		len += r;
		resp[len] = 0;
		if (strstr(resp, "\r\n"))
			break;
	}
	resp[len] = 0;
	close(s);
	if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1)
		return snprintf(msg, size, "%smalformed HTTP response", prefix), 1;
	if (code >= 200 && code < 400)
		return 0;
	snprintf(msg, size, "HTTP probe failed with statuscode: %d", code);
	return 1;
}

/* Enter container c: its mount and pid namespaces and its root (the next fork lands in its pid
 * namespace). A container cloned a moment ago may not be in its root yet: wait up to wait_ms.
 * Shared by exec probes and hooks (here) and exec sessions (streamopen.c); -1 with errno. */
static int enter_container(const struct container *c, long wait_ms)
{
	char path[64];
	struct stat mine, theirs;
	snprintf(path, sizeof path, "/proc/%d/root/", (int)c->pid);
	stat("/", &mine);
	for (long waited = 0; waited < wait_ms && stat(path, &theirs) == 0 && theirs.st_dev == mine.st_dev &&
	                      theirs.st_ino == mine.st_ino; waited += 20)
		usleep(20000);
	snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)c->pid);
	int mnt_ns = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)c->pid);
	int pid_ns = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%d/root", (int)c->pid);
	int root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mnt_ns < 0 || pid_ns < 0 || root < 0 || setns(mnt_ns, CLONE_NEWNS) < 0 ||
	    setns(pid_ns, CLONE_NEWPID) < 0 || fchdir(root) < 0 || chroot(".") < 0)
		return -1;
	return 0;
}

/* Run the command in the container: its mount and pid namespaces, its root, user and env. */
static int do_exec(struct container *c, const struct action *a, char *msg, size_t size)
{
	int fds[2], status;
	/* the probe's alarm bounds the wait for a just-cloned container */
	if (enter_container(c, LONG_MAX) < 0)
		return snprintf(msg, size, "failed to enter container %s: %s", c->name, go_error(errno)), 1;
	if (chdir(c->workdir) < 0 && chdir("/") < 0)
		return snprintf(msg, size, "chdir %s: %s", c->workdir, go_error(errno)), 1;
	if (pipe(fds) < 0)
		return snprintf(msg, size, "pipe: %s", go_error(errno)), 1;
	helper = fork(); /* the first process this runner forks lives in the container's pid namespace */
	if (helper == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		dup2(null < 0 ? fds[1] : null, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		if (setgroups(0, NULL) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
			dprintf(2, "user %u:%u: %s\n", c->uid, c->gid, go_error(errno)), _exit(126);
		environ = c->envp; /* the container's PATH finds the command, as upstream */
		execvp(a->argv[0], a->argv);
		dprintf(2, "exec: \"%s\": %s\n", a->argv[0], errno == ENOENT ? "executable file not found in $PATH" : go_error(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	close(fds[1]);
	if (helper < 0)
		return snprintf(msg, size, "fork: %s", go_error(errno)), 1;
	size_t len = 0;
	ssize_t r;
	char sink[256];
	while ((r = read(fds[0], len < size - 1 ? msg + len : sink, len < size - 1 ? size - 1 - len : sizeof sink)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (len < size - 1)
			len += r;
	}
	msg[len] = 0;
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = 0;
	while (waitpid(helper, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static void run_action(struct run *run, struct container *c, const struct action *a, int timeout_s)
{
	int fds[2];
	run->pid = 0;
	run->out = -1;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return (void)say("container %s: probe pipe: %s", c->name, strerror(errno));
	pid_t pid = fork();
	if (pid == 0) {
		char msg[MSG_MAX + 1] = "";
		sigset_t none;
		struct sigaction sa = {.sa_handler = on_alarm};
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		sigaction(SIGALRM, &sa, NULL);
		alarm(timeout_s > 0 ? (unsigned)timeout_s : 1);
		int rc = a->type == ACT_EXEC   ? do_exec(c, a, msg, sizeof msg)
		         : a->type == ACT_HTTP ? do_http(a, msg, sizeof msg)
		                               : do_tcp(a, msg, sizeof msg);
		alarm(0);
		if (write(fds[1], msg, strlen(msg)) < 0)
			rc = 1;
		_exit(rc);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return (void)say("container %s: probe fork: %s", c->name, strerror(errno));
	}
	run->pid = pid;
	run->target = c->pid;
	run->out = fds[0];
	run->kill_at_ms = now_ms() + timeout_s * 1000LL + HARD_KILL_SLACK_MS;
}

/* The runner's verdict (1 passed, 0 failed) and its message in msg. */
static int finish_run(struct run *run, const struct action *a, int status, char *msg, size_t size)
{
	ssize_t r = read(run->out, msg, size - 1);
	msg[r > 0 ? r : 0] = 0;
	close(run->out);
	run->pid = 0;
	run->out = -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 1;
	if ((WIFEXITED(status) && WEXITSTATUS(status) == TIMEOUT_CODE) || WIFSIGNALED(status)) {
		const char *host = target_host(a);
		if (a->type == ACT_EXEC)
			snprintf(msg, size, "command \"%s\" timed out", a->argv[0]);
		else if (a->type == ACT_HTTP)
			snprintf(msg, size, "Get \"http://%s:%d%s\": context deadline exceeded "
			         "(Client.Timeout exceeded while awaiting headers)", host, a->port, a->path);
		else
			snprintf(msg, size, "dial tcp %s:%d: i/o timeout", host, a->port);
	}
	return 0;
}

/* ---- container kills ---- */

static void term(struct container *c, long long now)
{
	struct lifecycle *lc = &c->lc;
	long long left = lc->stop_began_ms + grace_s * 1000LL - now;
	kill(-c->pid, SIGTERM);
	lc->kill_at_ms = now + (left > MIN_TERM_GRACE_MS ? left : MIN_TERM_GRACE_MS);
}

static void run_hook(struct container *c, int kind)
{
	c->lc.hook_kind = kind;
	run_action(&c->lc.hook, c, &c->lc.hooks[kind], kind == PRE_STOP ? (int)grace_s : POST_START_TIMEOUT_S);
}

/* Stop one container as the kubelet does: preStop, SIGTERM, the grace period, SIGKILL. */
static void kill_container(struct container *c, const char *why, int restart)
{
	struct lifecycle *lc = &c->lc;
	long long now = now_ms();
	if (!c->pid || lc->killing)
		return;
	lc->killing = 1;
	lc->restart_after_kill = restart;
	lc->stop_began_ms = now;
	if (why)
		event("{\"event\":\"killing\",\"container\":\"%s\",\"reason\":\"%s\",\"restart\":%s}", c->name, why,
		      restart && restart_policy != NEVER ? "true" : "false");
	if (lc->hook.pid) /* a postStart still running: the kill does not wait for it */
		kill(lc->hook.pid, SIGKILL);
	if (lc->hooks[PRE_STOP].type != ACT_NONE && !lc->hook.pid) {
		run_hook(c, PRE_STOP);
		if (lc->hook.pid)
			return;
	}
	term(c, now);
}

static void stop_all(void)
{
	for (int i = 0; i < npods; i++)
		kill_container(&pods[i], NULL, 0);
}

/* ---- results ---- */

static void probe_done(struct container *c, int k, int ok, const char *message)
{
	struct lifecycle *lc = &c->lc;
	struct probe *p = &lc->probes[k];
	char esc[ESC_MAX];
	int before = p->result;
	if (ok) {
		p->successes++;
		p->failures = 0;
	} else {
		p->failures++;
		p->successes = 0;
	}
	if (ok ? p->successes >= p->success_threshold : p->failures >= p->failure_threshold)
		p->result = ok;
	if (ok && p->result == before)
		return; /* a passing probe that changes nothing is not news */
	json_escape(esc, sizeof esc, ok ? "" : message);
	event("{\"event\":\"probe\",\"container\":\"%s\",\"probe\":\"%s\",\"ok\":%s,\"state\":%s,\"message\":\"%s\"}",
	      c->name, probe_names[k], ok ? "true" : "false", p->result == 1 ? "true" : "false", esc);
	if (k == STARTUP && p->result == 1)
		lc->started = 1;
	if (k != READINESS && p->result == 0) {
		say("container %s failed its %s probe: %s", c->name, probe_names[k], message);
		kill_container(c, probe_names[k], 1);
	}
}

static void hook_done(struct container *c, int ok, const char *message, pid_t target)
{
	struct lifecycle *lc = &c->lc;
	char esc[ESC_MAX];
	if (!ok) {
		json_escape(esc, sizeof esc, message);
		event("{\"event\":\"hook\",\"container\":\"%s\",\"hook\":\"%s\",\"ok\":false,\"message\":\"%s\"}",
		      c->name, hook_names[lc->hook_kind], esc);
	}
	if (!c->pid || c->pid != target) /* that run of the container is over */
		return;
	if (lc->hook_kind == PRE_STOP)
		term(c, now_ms());
	else if (!ok)
		kill_container(c, "poststart", 1);
}

static void lifecycle_reaped(pid_t pid, int status)
{
	char msg[MSG_MAX + 1];
	for (int i = 0; i < npods; i++) {
		struct container *c = &pods[i];
		struct lifecycle *lc = &c->lc;
		if (lc->hook.pid == pid) {
			pid_t target = lc->hook.target;
			int ok = finish_run(&lc->hook, &lc->hooks[lc->hook_kind], status, msg, sizeof msg);
			hook_done(c, ok, msg, target);
			return;
		}
		for (int k = 0; k < NPROBES; k++) {
			if (lc->probes[k].run.pid != pid)
				continue;
			pid_t target = lc->probes[k].run.target;
			int ok = finish_run(&lc->probes[k].run, &lc->probes[k].act, status, msg, sizeof msg);
			if (c->pid && c->pid == target && !lc->killing) /* else moot: that run is going or gone */
				probe_done(c, k, ok, msg);
			return;
		}
	}
}

/* ---- container lifetime ---- */

static void lifecycle_started(struct container *c)
{
	struct lifecycle *lc = &c->lc;
	long long now = now_ms();
	lc->started = lc->probes[STARTUP].act.type == ACT_NONE;
	lc->killing = lc->restart_after_kill = 0;
	lc->kill_at_ms = 0;
	lc->stop_began_ms = now;
	for (int k = 0; k < NPROBES; k++) {
		struct probe *p = &lc->probes[k];
		p->successes = p->failures = 0;
		p->result = k == LIVENESS ? 1 : k == READINESS ? 0 : -1; /* the kubelet's initial values */
		p->next_ms = now + p->delay_s * 1000LL;
	}
	if (lc->hooks[POST_START].type != ACT_NONE)
		run_hook(c, POST_START);
}

static int wants_restart(struct container *c, int code)
{
	if (c->lc.init)
		return code != 0 && restart_policy != NEVER; /* init containers: OnFailure under Always */
	if (c->lc.killing && c->lc.restart_after_kill)
		return restart_policy != NEVER;
	return restart_policy == ALWAYS || (restart_policy == ON_FAILURE && code != 0);
}

static void lifecycle_exited(struct container *c)
{
	c->lc.killing = 0;
	c->lc.kill_at_ms = 0;
}

/* Init containers one at a time, each to success; then every app container. */
static void advance(void)
{
	if (apps_started)
		return;
	for (int i = 0; i < npods; i++) {
		struct container *c = &pods[i];
		if (!c->lc.init || (c->done && c->last_code == 0))
			continue;
		if (!c->done && !c->pid && !c->restart_at_ms)
			start(c);
		return; /* running, backing off, or failed for good (the pod fails: nothing else starts) */
	}
	apps_started = 1;
	for (int i = 0; i < npods; i++)
		if (!pods[i].lc.init)
			start(&pods[i]);
}

static void lifecycle_begin(void)
{
	char cmdline[4096];
	const char *p;
	if (read_file("/proc/cmdline", cmdline, sizeof cmdline) >= 0 && (p = strstr(cmdline, "nestlab.ip=")))
		sscanf(p + 11, "%31[0-9.]", pod_ip);
	if (deadline_s > 0)
		deadline_at_ms = now_ms() + deadline_s * 1000LL;
}

#define SOONER(t) do { if (next < 0 || (t) < next) next = (t); } while (0)

/* Start what is due, run due probes, enforce timeouts and kills; the next time anything is due. */
static long long lifecycle_tick(long long now, int *stopping, long long *stop_deadline)
{
	long long next = -1;
	if (deadline_at_ms && !*stopping) {
		if (now >= deadline_at_ms) {
			say("pod %s: activeDeadlineSeconds (%ld) reached", pod_name, deadline_s);
			/* The kubelet reports the pod Failed at the deadline and kills its containers after:
			 * the host hears it now, not once the grace period is over ("pod" follows then). */
			event("{\"event\":\"deadline\",\"pod\":\"%s\"}", pod_name);
			deadline_hit = *stopping = 1;
			*stop_deadline = now + grace_s * 1000LL;
			stop_all();
		} else {
			SOONER(deadline_at_ms);
		}
	}
	if (!*stopping)
		advance();
	for (int i = 0; i < npods; i++) {
		struct container *c = &pods[i];
		struct lifecycle *lc = &c->lc;
		if (lc->hook.pid) {
			if (now >= lc->hook.kill_at_ms)
				kill(lc->hook.pid, SIGKILL), lc->hook.kill_at_ms = now + 1000;
			SOONER(lc->hook.kill_at_ms);
		}
		for (int k = 0; k < NPROBES; k++) {
			struct run *run = &lc->probes[k].run;
			if (run->pid) {
				if (now >= run->kill_at_ms)
					kill(run->pid, SIGKILL), run->kill_at_ms = now + 1000;
				SOONER(run->kill_at_ms);
			}
		}
		if (!c->pid)
			continue;
		if (lc->kill_at_ms) {
			if (now >= lc->kill_at_ms)
				kill(-c->pid, SIGKILL), lc->kill_at_ms = now + 1000;
			SOONER(lc->kill_at_ms);
		}
		if (lc->killing || *stopping)
			continue;
		for (int k = 0; k < NPROBES; k++) {
			struct probe *p = &lc->probes[k];
			if (p->act.type == ACT_NONE || p->run.pid || (k == STARTUP) == lc->started)
				continue;
			if (now >= p->next_ms) {
				run_action(&p->run, c, &p->act, p->timeout_s);
				p->next_ms = now + p->period_s * 1000LL;
				if (p->run.pid)
					SOONER(p->run.kill_at_ms);
			}
			SOONER(p->next_ms);
		}
	}
	return next;
}

static void report_done(int failed)
{
	if (deadline_hit) {
		event("{\"event\":\"pod\",\"pod\":\"%s\",\"phase\":\"Failed\",\"reason\":\"DeadlineExceeded\"}", pod_name);
		say("pod %s Failed (DeadlineExceeded)", pod_name);
		return;
	}
	event("{\"event\":\"pod\",\"pod\":\"%s\",\"phase\":\"%s\"}", pod_name, failed ? "Failed" : "Succeeded");
	say("pod %s %s", pod_name, failed ? "Failed" : "Succeeded");
}
