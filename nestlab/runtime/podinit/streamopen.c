/*
 * What the host asks on the stream port (frames in streams.h): OPEN starts an exec (a runner
 * process that enters the container and forks the command), a port-forward connection or an
 * attach; DATA, EOF, RESIZE and CLOSE go to the open sessions. Also a container's own stdin and
 * tty (`stdio STDIN ONCE TTY`), which attach -i writes to.
 *
 * The runner is a child of pod-init: it enters the container's mount and pid namespaces and its
 * root (as probes.c do_exec), forks the command (which is then in the container's pid namespace)
 * as the container's user with its env, in its own session (the pty as controlling terminal with
 * TTY), and reports on a pipe: `P pid` (the command), `E message` (it could not start), `W status`
 * (its wait status). #included at the end of streams.c.
 */

/* ---- OPEN ---- */

static int open_container(uint32_t id, const char *name)
{
	for (int i = 0; i < npods; i++) {
		if (strcmp(pods[i].name, name))
			continue;
		if (pods[i].pid <= 0)
			return send_text(id, SP_ERROR, "container %s is not running", name), -1;
		return i;
	}
	return send_text(id, SP_ERROR, "container %s not found in this pod", name), -1;
}

static void report(int fd, const char *fmt, ...)
{
	char line[300];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	n = n < 0 ? 0 : n > (int)sizeof line - 2 ? (int)sizeof line - 2 : n;
	for (int i = 0; i < n; i++)
		line[i] = line[i] == '\n' ? ' ' : line[i];
	line[n++] = '\n';
	if (write(fd, line, (size_t)n) < 0)
		return;
}

/* The runner (a child of pod-init): enter the container, fork the command, report, wait. */
static void exec_runner(struct container *c, const struct sp_open *o, int in, int out, int err, int rep)
{
	static char *env[MAX_ENV + 3];
	int envc = 0, has_term = 0, status;
	sigset_t none;
	for (int fd = 3; fd < 1024; fd++)
		if (fd != in && fd != out && fd != err && fd != rep)
			close(fd); /* other sessions' pipes: their EOF must not wait for this process */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (in < 0)
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (enter_container(c, ENTER_WAIT_MS) < 0)
		report(rep, "E container %s is not running", c->name), _exit(0);
	if (chdir(c->workdir) < 0 && chdir("/") < 0)
		report(rep, "E chdir %s: %s", c->workdir, go_error(errno)), _exit(0);
	for (int i = 0; i < c->envc; i++) {
		env[envc++] = c->envp[i];
		has_term |= !strncmp(c->envp[i], "TERM=", 5);
	}
	if (o->tty && !has_term)
		env[envc++] = "TERM=xterm";
	env[envc] = NULL;
	if (o->tty && fchown(out, c->uid, (gid_t)-1) < 0)
		dprintf(err, "pod-init: chown of the terminal: %s\n", go_error(errno));
	pid_t pid = fork(); /* the first process forked after setns(pid) is in the container's pid namespace */
	if (pid == 0) {
		setsid();
		if (o->tty)
			ioctl(out, TIOCSCTTY, 0);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		if (setgroups(0, NULL) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
			report(rep, "E user %u:%u: %s", c->uid, c->gid, go_error(errno)), _exit(126);
		environ = env; /* execvp looks the command up in the container's PATH, not pod-init's */
		execvp(o->argv[0], o->argv);
		int e = errno;
		report(rep, "E exec: \"%s\": %s", o->argv[0], e == ENOENT ? "executable file not found in $PATH" : go_error(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	if (pid < 0)
		report(rep, "E fork: %s", go_error(errno)), _exit(0);
	report(rep, "P %d", (int)pid);
	close(in);
	close(out);
	if (err != out)
		close(err);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	report(rep, "W %d", status);
	_exit(0);
}

static void close_pair(int *fds)
{
	close_fd(&fds[0]);
	close_fd(&fds[1]);
}

static void start_exec(struct session *s, const struct sp_open *o)
{
	int ci = open_container(s->id, o->container);
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
	const char *what = "pipe";
	if (ci < 0)
		return;
	if (o->tty) {
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		char *name = m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0 ? ptsname(m) : NULL;
		int slave = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
		what = "pseudo-terminal";
		if (slave >= 0) {
			out[0] = m;
			out[1] = err[1] = in[0] = slave;
		} else if (m >= 0) {
			close(m);
		}
	} else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || (o->in && pipe2(in, O_CLOEXEC) < 0)) {
		close_pair(out);
		close_pair(err);
	}
	if (out[0] < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		send_text(s->id, SP_ERROR, "%s: %s", what, go_error(errno));
		if (o->tty) {
			close_fd(&out[0]);
			close_fd(&out[1]);
		} else {
			close_pair(out);
			close_pair(err);
			close_pair(in);
		}
		return;
	}
	pid_t pid = fork();
	if (pid == 0)
		exec_runner(&pods[ci], o, in[0], out[1], err[1], rep[1]);
	int e = errno;
	close_fd(&rep[1]);
	close_fd(&out[1]);
	if (o->tty) {
		s->in = s->out = out[0];
	} else {
		close_fd(&err[1]);
		close_fd(&in[0]);
		s->out = out[0];
		s->err = err[0];
		s->in = in[1];
	}
	s->report = rep[0];
	s->container = ci;
	s->tty = o->tty;
	int fds[] = {s->out, s->err, s->in, s->report};
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFL, O_NONBLOCK);
	s->state = S_OPEN;
	if (pid < 0) {
		send_text(s->id, SP_ERROR, "fork: %s", go_error(e));
		release(s);
		return;
	}
	s->runner = pid;
	send_frame(s->id, SP_OPENED, NULL, 0);
}

static void start_port(struct session *s, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return send_text(s->id, SP_ERROR, "socket: %s", go_error(errno));
	s->in = s->out = fd;
	s->state = S_OPEN;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		send_frame(s->id, SP_OPENED, NULL, 0);
	} else if (errno == EINPROGRESS) {
		s->connecting = 1;
	} else {
		send_text(s->id, SP_ERROR, "%s", go_error(errno));
		release(s);
	}
}

static void open_session(uint32_t id, const unsigned char *payload, size_t len)
{
	struct sp_open o;
	const char *why = "";
	struct session *s = NULL;
	memcpy(open_text, payload, len);
	open_text[len] = 0;
	if (!id || find_session(id))
		return send_text(id, SP_ERROR, "session id %u is already open", id);
	if (sp_parse_open(open_text, &o, &why) < 0)
		return send_text(id, SP_ERROR, "bad OPEN request: %s", why);
	for (int i = 0; i < MAX_SESSIONS && !s; i++)
		if (sessions[i].state == S_FREE)
			s = &sessions[i];
	if (!s)
		return send_text(id, SP_ERROR, "too many streams open in this pod (max %d)", MAX_SESSIONS);
	s->id = id;
	s->kind = o.kind;
	s->out = s->err = s->in = s->report = -1;
	s->container = -1;
	s->tty = s->reaped = s->have_status = s->wstatus = s->in_eof = s->connecting = s->shut = s->half = 0;
	s->runner = s->group = 0;
	s->error[0] = 0;
	s->in_len = 0;
	if (o.kind == SP_PORT) {
		start_port(s, o.port);
	} else if (o.kind == SP_EXEC) {
		start_exec(s, &o);
	} else if ((s->container = open_container(id, o.container)) >= 0) {
		struct stdio *io = &stdio[s->container];
		s->state = S_OPEN; /* attach: output comes from drain(), stdin goes to the container's own */
		s->tty = io->tty;
		if (o.in && io->in && io->fd >= 0)
			s->in = fcntl(io->fd, F_DUPFD_CLOEXEC, 3);
		send_frame(id, SP_OPENED, NULL, 0);
	}
}

/* ---- input from the host ---- */

/* 0 when the frame is consumed, 1 when it must wait (a full stdin buffer). */
static int handle_frame(const struct sp_header *h, const unsigned char *payload)
{
	struct session *s = h->type == SP_OPEN ? NULL : find_session(h->id);
	unsigned short cols, rows;
	switch (h->type) {
	case SP_OPEN:
		open_session(h->id, payload, h->len);
		break;
	case SP_DATA:
		if (!s || s->in < 0)
			break; /* nobody reads it: stdin not asked for, or already closed */
		if (STDIN_MAX - s->in_len < h->len)
			pump_in(s);
		if (s->state != S_OPEN)
			break;
		if (STDIN_MAX - s->in_len < h->len)
			return 1;
		memcpy(s->inbuf + s->in_len, payload, h->len);
		s->in_len += h->len;
		pump_in(s);
		break;
	case SP_EOF:
		if (s && !s->tty) {
			s->in_eof = 1;
			pump_in(s);
		}
		break;
	case SP_RESIZE:
		if (s && s->tty && sp_parse_resize(payload, h->len, &cols, &rows) == 0) {
			struct winsize ws = {.ws_row = rows, .ws_col = cols};
			int fd = s->kind == SP_ATTACH ? stdio[s->container].fd : s->out;
			if (fd >= 0 && (s->kind != SP_ATTACH || stdio[s->container].tty))
				ioctl(fd, TIOCSWINSZ, &ws);
		}
		break;
	case SP_CLOSE:
		if (s)
			session_close(s);
		break;
	default:
		say("stream port: unknown frame type %u for session %u ignored", h->type, h->id);
	}
	return 0;
}

static void process_input(void)
{
	struct sp_header h;
	size_t off = 0;
	int r = 0;
	port_in_blocked = 0;
	while ((r = sp_parse_header(port_in + off, port_in_len - off, &h)) > 0 &&
	       port_in_len - off >= SP_HEADER + h.len) {
		if (handle_frame(&h, port_in + off + SP_HEADER)) {
			port_in_blocked = 1;
			break;
		}
		off += SP_HEADER + h.len;
	}
	if (r < 0) {
		say("stream port: frame of %u bytes is over the %d limit: every session aborted", h.len, SP_MAX_PAYLOAD);
		abort_all();
		return;
	}
	memmove(port_in, port_in + off, port_in_len - off);
	port_in_len -= off;
}

static void host_gone(void)
{
	int open = 0;
	for (int i = 0; i < MAX_SESSIONS; i++)
		open += sessions[i].state == S_OPEN;
	if (open)
		say("stream port: the host end closed: %d session(s) aborted", open);
	abort_all();
	port_out_len = port_out_off = 0;
	port_quiet_until = now_ms() + 1000;
}

static void read_port(void)
{
	ssize_t r;
	while (!port_in_blocked && port_in_len < IN_MAX) {
		r = read(stream_port, port_in + port_in_len, IN_MAX - port_in_len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) { /* end of file: the host's end closed (POLLIN comes with POLLHUP then) */
			host_gone();
			return;
		}
		if (r < 0)
			return;
		port_in_len += (size_t)r;
		process_input();
	}
}

/* ---- a container's own stdin and tty ---- */

/* `stdio STDIN ONCE TTY` (container level, each 0|1): containers[].stdin, stdinOnce, tty. */
static int streams_directive(int container, const char *key, char *value)
{
	if (container < 0 || strcmp(key, "stdio"))
		return 0;
	struct stdio *io = &stdio[container];
	if (sscanf(value, "%d %d %d", &io->in, &io->once, &io->tty) != 3)
		say("stdio directive '%s' is malformed: ignored", value), io->in = io->once = io->tty = 0;
	return 1;
}

/*
 * Called by start() with the container's output pipe (*out_r, *out_w): with TTY it is replaced by
 * a pty (master read by drain(), slave the container's stdin, stdout and stderr); with STDIN a
 * pipe for its stdin is made. Returns the fd the container gets as stdin, or -1 for /dev/null.
 */
static int streams_stdio(int container, int *out_r, int *out_w)
{
	struct stdio *io = &stdio[container];
	int in[2];
	if (!io->tty)
		close_fd(&io->fd); /* left from a start whose clone failed */
	io->fd = -1;
	if (io->tty) {
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		char *name = m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0 ? ptsname(m) : NULL;
		int slave = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
		if (slave < 0) {
			say("container %s: no pseudo-terminal (%s): it runs without one", pods[container].name, strerror(errno));
			if (m >= 0)
				close(m);
		} else {
			close(*out_r);
			close(*out_w);
			*out_r = m;
			*out_w = slave;
			io->fd = m; /* it is also c->out: drain() reads it and closes it */
			return slave;
		}
	}
	if (!io->in || pipe2(in, O_CLOEXEC) < 0)
		return -1;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	io->fd = in[1];
	return in[0];
}
