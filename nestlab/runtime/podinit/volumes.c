/*
 * Pod volumes, #included from podinit.c (it uses say, event, mkdirs, mnt and the container table).
 *
 * Description directives (nestlab/runtime/poddesc.py):
 *   volume NAME dir            an emptyDir: /eph/.volumes/NAME on the ephemeral disk, mode 0777
 *   volume NAME tmpfs MIB      medium Memory: a tmpfs of MIB (0: the kernel's default) at /run/vol/NAME
 *   volume NAME files          configMap/secret/downwardAPI/projected at /run/vol/NAME (RAM, as the
 *                              kubelet keeps secrets), then its first generation as
 *   file NAME PATH MODE DATA   (MODE octal, PATH and DATA %XX-encoded; DATA may hold NULs)
 *   volume NAME block SERIAL FSTYPE ro|rw
 *                              a PersistentVolume: the virtio disk with SERIAL (QEMU reads it from the
 *                              datastore over NBD) mounted with FSTYPE at /run/vol/NAME, read-only
 *                              when ro. A disk that is missing or does not mount is said on the
 *                              console, and every container mounting the volume fails to start with
 *                              that reason on its stderr (exit 126), as for other volume failures.
 *   volume NAME hostpath TAG   a host directory (hostPath /var/log/pods, the vSphere rule) QEMU exports
 *                              read-only over virtio-9p with mount tag TAG: mounted read-only with
 *                              trans=virtio at /run/vol/NAME; every container mount of it is read-only.
 *                              A failed mount is kept as the volume's failure, as for a block volume.
 *   mount NAME PATH ro|rw SUB  (container level; SUB "-" for none)
 *
 * A files volume is written with the kubelet's AtomicWriter layout: the generation in "..gen_N/",
 * "..data" a symlink to it replaced with rename(2) (readers see the old files or the new ones,
 * never a mix), and each top-level name a link "NAME -> ..data/NAME". The host sends a new
 * generation on the control port as "update NAME", "file PATH MODE DATA"..., "commit NAME";
 * pod-init answers {"event":"volume","volume":NAME,"ok":1|0}. Containers get bind mounts made
 * in their own mount namespace before chroot: a whole-volume mount sees every later generation,
 * a subPath mount pins the file it resolved to at start (as upstream, it does not update).
 */

#define MAX_VOLUMES 64
#define MAX_MOUNTS 256
#define MAX_FILES 4096
#define CTL_MAX (8 * 1024 * 1024 + 65536) /* one control line: a whole file of a generation */
#define VOL_EPH "/eph/.volumes"         /* container names are DNS labels: never ".volumes" */
#define VOL_RUN "/run/vol"

enum vkind { V_DIR, V_TMPFS, V_FILES, V_BLOCK, V_HOSTPATH };
struct volume {
	char *name; enum vkind kind; long size_mib; int gen;
	char *serial, *fstype; int ro; /* block only (serial: the 9p mount tag of a hostpath volume) */
	char failure[160];             /* block/hostpath: why its file system is not mounted ("" when it is) */
};
struct vfile { int volume; char *path; mode_t mode; char *data; size_t len; };
struct vmount { int container; int volume; char *path; int ro; char *sub; };

static struct volume volumes[MAX_VOLUMES];
static struct vfile vfiles[MAX_FILES];
static struct vmount vmounts[MAX_MOUNTS];
static int nvolumes, nvfiles, nvmounts;

/* The next space-separated word of *rest (NULL when none); *rest moves past it. */
static char *word(char **rest)
{
	char *w = *rest;
	if (!w || !*w)
		return NULL;
	char *sp = strchr(w, ' ');
	if (sp) {
		*sp = 0;
		*rest = sp + 1;
	} else {
		*rest = w + strlen(w);
	}
	return w;
}

static int find_volume(const char *name)
{
	for (int i = 0; i < nvolumes; i++)
		if (!strcmp(volumes[i].name, name))
			return i;
	return -1;
}

static void volume_path(const struct volume *v, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", v->kind == V_DIR ? VOL_EPH : VOL_RUN, v->name);
}

static int volume_directive(char *value)
{
	char *name = word(&value), *kind = word(&value), *size = word(&value);
	if (!name || !kind || nvolumes == MAX_VOLUMES)
		return say("pod description: bad volume line or more than %d volumes", MAX_VOLUMES), -1;
	struct volume *v = &volumes[nvolumes++];
	v->name = name;
	v->kind = !strcmp(kind, "dir") ? V_DIR : !strcmp(kind, "tmpfs") ? V_TMPFS : !strcmp(kind, "block") ? V_BLOCK
		: !strcmp(kind, "hostpath") ? V_HOSTPATH : V_FILES;
	if (v->kind == V_HOSTPATH) {
		if (!size)
			return say("volume %s: a hostpath volume needs its 9p mount TAG", name), -1;
		v->serial = size, v->ro = 1;
		return 0;
	}
	if (v->kind == V_BLOCK) {
		char *fstype = word(&value), *mode = word(&value);
		if (!size || !fstype || !mode)
			return say("volume %s: a block volume needs SERIAL FSTYPE ro|rw", name), -1;
		v->serial = size, v->fstype = fstype, v->ro = !strcmp(mode, "ro");
		return 0;
	}
	v->size_mib = size ? atol(size) : 0;
	if (v->kind == V_FILES && strcmp(kind, "files"))
		return say("volume %s: unknown kind %s", name, kind), -1;
	return 0;
}

/* Mount a block volume's file system at path; on failure its reason is kept for the containers. */
static void mount_block(struct volume *v, const char *path)
{
	const char *dev = disk_by_serial(v->serial);
	mkdirs(path);
	if (!dev)
		snprintf(v->failure, sizeof v->failure, "no virtio disk with serial %s (not attached to the VM)", v->serial);
	else if (mount(dev, path, v->fstype, MS_NOSUID | MS_NODEV | (v->ro ? MS_RDONLY : 0), NULL) < 0)
		snprintf(v->failure, sizeof v->failure, "mounting %s (serial %s) as %s%s: %s", dev, v->serial, v->fstype,
			 v->ro ? " read-only" : "", strerror(errno));
	if (v->failure[0])
		say("volume %s: %s", v->name, v->failure);
	else
		say("volume %s: %s mounted (%s, %s)", v->name, dev, v->fstype, v->ro ? "ro" : "rw");
}

/* Mount a hostpath volume: the read-only virtio-9p export with the volume's tag. msize: 128 KiB
 * messages instead of the kernel's 8 KiB default (QEMU warns of degraded performance below). */
static void mount_hostpath(struct volume *v, const char *path)
{
	mkdirs(path);
	if (mount(v->serial, path, "9p", MS_RDONLY | MS_NOSUID | MS_NODEV,
		  "trans=virtio,version=9p2000.L,msize=131072") < 0) {
		snprintf(v->failure, sizeof v->failure, "mounting the host's export %s (9p): %s", v->serial, strerror(errno));
		say("volume %s: %s", v->name, v->failure);
	} else {
		say("volume %s: host export %s mounted (9p, ro)", v->name, v->serial);
	}
}

static int file_directive(char *value)
{
	char *name = word(&value), *path = word(&value), *mode = word(&value);
	int vol = name ? find_volume(name) : -1;
	if (vol < 0 || !path || !mode || nvfiles == MAX_FILES)
		return say("pod description: bad file line (volume %s)", name ? name : "?"), -1;
	struct vfile *f = &vfiles[nvfiles++];
	f->volume = vol;
	f->path = decode(path);
	f->mode = (mode_t)strtol(mode, NULL, 8) & 0777;
	f->data = value;
	f->len = decode_len(value);
	return 0;
}

static int mount_directive(int container, char *value)
{
	char *name = word(&value), *path = word(&value), *ro = word(&value), *sub = word(&value);
	int vol = name ? find_volume(name) : -1;
	if (vol < 0 || !path || !ro || nvmounts == MAX_MOUNTS)
		return say("pod description: bad mount line (volume %s)", name ? name : "?"), -1;
	struct vmount *m = &vmounts[nvmounts++];
	m->container = container;
	m->volume = vol;
	m->path = decode(path);
	m->ro = !strcmp(ro, "ro");
	m->sub = sub && strcmp(sub, "-") ? decode(sub) : NULL;
	return 0;
}

/* ---- AtomicWriter ---- */

static int rm_tree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_tree_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Start generation gen+1 of volume v: an empty "..gen_N" directory; its path goes to dir. */
static int gen_begin(struct volume *v, char *dir, size_t size)
{
	char base[300];
	volume_path(v, base, sizeof base);
	snprintf(dir, size, "%s/..gen_%d", base, v->gen + 1);
	rm_tree(dir); /* a half-written one from an update that never committed */
	if (mkdir(dir, 0755) < 0)
		return say("volume %s: mkdir %s: %s", v->name, dir, strerror(errno)), -1;
	return 0;
}

static int gen_file(struct volume *v, const char *dir, const char *path, mode_t mode, const char *data, size_t len)
{
	char full[1024];
	if (path[0] == '/' || !strncmp(path, "..", 2) || strstr(path, "/../") || strlen(path) > 512)
		return say("volume %s: file path %s is not allowed", v->name, path), -1;
	snprintf(full, sizeof full, "%s/%s", dir, path);
	char *slash = strrchr(full, '/');
	*slash = 0;
	mkdirs(full);
	*slash = '/';
	int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	size_t off = 0;
	while (fd >= 0 && off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
	int ok = fd >= 0 && off == len && fchmod(fd, mode) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok)
		return say("volume %s: writing %s: %s", v->name, path, strerror(errno)), -1;
	return 0;
}

/* Point ..data at the new generation with one rename(2), link its top-level names, drop the old. */
static int gen_commit(struct volume *v)
{
	char base[300], link[400], old[300] = "", target[64], entry[700], dest[700];
	volume_path(v, base, sizeof base);
	snprintf(target, sizeof target, "..gen_%d", v->gen + 1);
	snprintf(link, sizeof link, "%s/..data", base);
	ssize_t n = readlink(link, old, sizeof old - 1);
	old[n > 0 ? n : 0] = 0;
	snprintf(entry, sizeof entry, "%s/..data_tmp", base);
	unlink(entry);
	if (symlink(target, entry) < 0 || rename(entry, link) < 0)
		return say("volume %s: swapping ..data: %s", v->name, strerror(errno)), -1;
	v->gen++;
	/* top-level links: one per name of the new generation; names it no longer has go */
	snprintf(dest, sizeof dest, "%s/%s", base, target);
	DIR *dir = opendir(dest);
	struct dirent *d;
	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] == '.' && (!d->d_name[1] || (d->d_name[1] == '.' && !d->d_name[2])))
			continue;
		snprintf(entry, sizeof entry, "%s/%s", base, d->d_name);
		snprintf(dest, sizeof dest, "..data/%s", d->d_name);
		if (symlink(dest, entry) < 0 && errno != EEXIST)
			say("volume %s: link %s: %s", v->name, d->d_name, strerror(errno));
	}
	if (dir)
		closedir(dir);
	dir = opendir(base);
	while (dir && (d = readdir(dir))) {
		struct stat st;
		if (!strncmp(d->d_name, "..", 2) || !strcmp(d->d_name, "."))
			continue;
		snprintf(entry, sizeof entry, "%s/..data/%s", base, d->d_name);
		if (lstat(entry, &st) < 0) {
			snprintf(entry, sizeof entry, "%s/%s", base, d->d_name);
			unlink(entry);
		}
	}
	if (dir)
		closedir(dir);
	if (old[0] && strcmp(old, target)) {
		snprintf(entry, sizeof entry, "%s/%s", base, old);
		rm_tree(entry);
	}
	return 0;
}

/* Make every volume (after /eph is mounted) and write the files volumes' first generation. */
static void setup_volumes(void)
{
	char path[300], opts[64], dir[400];
	for (int i = 0; i < nvolumes; i++) {
		struct volume *v = &volumes[i];
		volume_path(v, path, sizeof path);
		if (v->kind == V_BLOCK) {
			mount_block(v, path);
			continue;
		}
		if (v->kind == V_HOSTPATH) {
			mount_hostpath(v, path);
			continue;
		}
		if (v->kind == V_TMPFS) {
			if (v->size_mib > 0)
				snprintf(opts, sizeof opts, "mode=0777,size=%ldm", v->size_mib);
			else
				snprintf(opts, sizeof opts, "mode=0777");
			mnt("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts);
			continue;
		}
		mkdirs(path);
		chmod(path, v->kind == V_DIR ? 0777 : 0755); /* upstream emptyDirs are world-writable */
		if (v->kind != V_FILES || gen_begin(v, dir, sizeof dir) < 0)
			continue;
		int failed = 0;
		for (int f = 0; f < nvfiles; f++)
			if (vfiles[f].volume == i)
				failed |= gen_file(v, dir, vfiles[f].path, vfiles[f].mode, vfiles[f].data, vfiles[f].len) < 0;
		if (!failed)
			gen_commit(v);
	}
}

/* At power-off: persistent volumes are unmounted (or at least made read-only), so the datastore's
 * copy is clean when the volume is detached and attached to another pod. */
static void unmount_volumes(void)
{
	char path[300];
	for (int i = 0; i < nvolumes; i++) {
		struct volume *v = &volumes[i];
		if ((v->kind != V_BLOCK && v->kind != V_HOSTPATH) || v->failure[0])
			continue;
		volume_path(v, path, sizeof path);
		if (umount(path) < 0 && mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			say("volume %s: unmounting %s: %s", v->name, path, strerror(errno));
	}
}

/* ---- bind mounts into a container's root (in its own mount namespace, before chroot) ---- */

static int inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == 0 || path[n] == '/');
}

static int mount_volumes(int container, const char *root)
{
	char src[1024], real[PATH_MAX], base[300], dst[1024], realroot[PATH_MAX];
	if (!realpath(root, realroot))
		return dprintf(2, "pod-init: %s: %s\n", root, strerror(errno)), -1;
	for (int i = 0; i < nvmounts; i++) {
		struct vmount *m = &vmounts[i];
		struct volume *v = &volumes[m->volume];
		struct stat st;
		if (m->container != container)
			continue;
		if (v->kind == V_BLOCK && v->failure[0])
			return dprintf(2, "pod-init: volume %s: its PersistentVolume is not mounted: %s\n", v->name,
				       v->failure), -1;
		if (v->kind == V_HOSTPATH && v->failure[0])
			return dprintf(2, "pod-init: volume %s: its hostPath is not mounted: %s\n", v->name, v->failure), -1;
		volume_path(v, base, sizeof base);
		snprintf(src, sizeof src, "%s%s%s", base, m->sub ? "/" : "", m->sub ? m->sub : "");
		if (m->sub && v->kind != V_FILES && v->kind != V_HOSTPATH && stat(src, &st) < 0)
			mkdirs(src); /* the kubelet creates a missing subPath directory */
		if (!realpath(src, real) || !inside(real, base) || stat(real, &st) < 0)
			return dprintf(2, "pod-init: volume %s: subPath %s is missing or leaves the volume\n", v->name,
				       m->sub ? m->sub : ""), -1;
		snprintf(dst, sizeof dst, "%s%s", root, m->path);
		if (S_ISDIR(st.st_mode)) {
			mkdirs(dst);
		} else {
			char *slash = strrchr(dst, '/');
			*slash = 0;
			mkdirs(dst);
			*slash = '/';
			int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd >= 0)
				close(fd);
		}
		char check[PATH_MAX];
		if (!realpath(dst, check) || !inside(check, realroot))
			return dprintf(2, "pod-init: mountPath %s leaves the container's root\n", m->path), -1;
		int ro = m->ro || v->kind == V_FILES || v->kind == V_HOSTPATH || (v->kind == V_BLOCK && v->ro); /* configMap/secret/hostPath: always */
		if (mount(real, check, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    (ro && mount(NULL, check, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0))
			return dprintf(2, "pod-init: mounting volume %s on %s: %s\n", v->name, m->path, strerror(errno)), -1;
	}
	return 0;
}

/* ---- host -> pod control lines: "stop", and a volume's new generation ---- */

static char ctl_buf[CTL_MAX];
static size_t ctl_len;
static int upd_volume = -1, upd_failed;
static char upd_dir[400];

static void control_update(char *line)
{
	char *rest = strchr(line, ' ');
	if (rest)
		*rest++ = 0;
	if (!strcmp(line, "update")) {
		upd_volume = rest ? find_volume(rest) : -1;
		upd_failed = upd_volume < 0 || volumes[upd_volume].kind != V_FILES ||
			     gen_begin(&volumes[upd_volume], upd_dir, sizeof upd_dir) < 0;
		if (upd_volume < 0)
			say("update for unknown volume %s", rest ? rest : "?");
	} else if (!strcmp(line, "file") && upd_volume >= 0 && !upd_failed) {
		char *path = word(&rest), *mode = word(&rest);
		if (!path || !mode) {
			upd_failed = 1;
			return;
		}
		decode(path);
		size_t len = decode_len(rest);
		upd_failed |= gen_file(&volumes[upd_volume], upd_dir, path, (mode_t)strtol(mode, NULL, 8) & 0777, rest, len) < 0;
	} else if (!strcmp(line, "commit") && upd_volume >= 0) {
		struct volume *v = &volumes[upd_volume];
		int ok = !upd_failed && gen_commit(v) == 0;
		if (!ok)
			rm_tree(upd_dir);
		else
			say("volume %s: generation %d", v->name, v->gen);
		event("{\"event\":\"volume\",\"volume\":\"%s\",\"ok\":%d}", v->name, ok);
		upd_volume = -1;
	}
}

/* Read what the host sent; 1 when it asked the pod to stop. The port stays blocking for event()
 * (an event waits for the host rather than being lost), but this read must not block: while the
 * host end is closed the port polls readable (EOF), and when the host reconnects between that
 * poll and this read, a blocking read would wait for the host's next line (a stop, a volume
 * update: maybe never) with every container, probe and exec session of the pod frozen behind it. */
static int control_input(void)
{
	int stop = 0, flags = fcntl(control, F_GETFL);
	fcntl(control, F_SETFL, flags | O_NONBLOCK);
	ssize_t r = read(control, ctl_buf + ctl_len, sizeof ctl_buf - 1 - ctl_len);
	fcntl(control, F_SETFL, flags);
	if (r <= 0)
		return 0;
	ctl_len += r;
	char *start = ctl_buf, *nl;
	ctl_buf[ctl_len] = 0;
	while ((nl = memchr(start, '\n', ctl_len - (start - ctl_buf)))) {
		*nl = 0;
		if (!strncmp(start, "stop", 4))
			stop = 1;
		else
			control_update(start);
		start = nl + 1;
	}
	ctl_len -= start - ctl_buf;
	memmove(ctl_buf, start, ctl_len);
	if (ctl_len == sizeof ctl_buf - 1) { /* a line longer than any generation's file: drop it */
		say("control line longer than %d bytes dropped", CTL_MAX);
		ctl_len = 0;
		upd_failed = 1;
	}
	return stop;
}
