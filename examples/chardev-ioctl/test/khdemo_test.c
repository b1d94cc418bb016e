// SPDX-License-Identifier: GPL-2.0
/*
 * khdemo's own user-space test: the ioctls through the module's header (struct kh_msg and the
 * KH_* requests as the target's compiler lays them out), printing what came back. Its output
 * must equal khdemo_test.expected on every target: 32- and 64-bit, little- and big-endian.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../khdemo_ioctl.h"

static void show(const char *what, const struct kh_msg *m)
{
	printf("%s: flag=%u a=%u b=%u c=%llu text=%s\n", what, m->flag, m->a, m->b,
	       (unsigned long long)m->c, m->text);
}

static int call(int fd, unsigned long request, const char *name, struct kh_msg *m)
{
	if (ioctl(fd, request, m) != 0) {
		printf("%s failed: %s\n", name, strerror(errno));
		return 1;
	}
	return 0;
}

int main(void)
{
	struct kh_msg m;
	int fd = open("/dev/khdemo", O_RDWR), bad = 0;

	if (fd < 0) {
		perror("open /dev/khdemo");
		return 1;
	}
	printf("sizeof(struct kh_msg) = %zu\n", sizeof(struct kh_msg));

	memset(&m, 0, sizeof(m));
	m.flag = 1;
	m.a = 305419896;
	m.b = 4660;
	m.c = 1234605616436508552ULL;
	strcpy(m.text, "kharness");
	bad |= call(fd, KH_SET, "KH_SET", &m);

	memset(&m, 0, sizeof(m));
	bad |= call(fd, KH_GET, "KH_GET", &m);
	show("KH_GET", &m);

	memset(&m, 0, sizeof(m));
	m.a = 21;
	m.b = 65535;
	m.c = 41;
	strcpy(m.text, "abc");
	bad |= call(fd, KH_XFORM, "KH_XFORM", &m);
	show("KH_XFORM", &m);

	if (ioctl(fd, KH_RESET) != 0) {
		printf("KH_RESET failed: %s\n", strerror(errno));
		bad = 1;
	}
	memset(&m, 0xff, sizeof(m));
	bad |= call(fd, KH_GET, "KH_GET", &m);
	show("KH_GET after KH_RESET", &m);

	printf("unknown request: %s\n", ioctl(fd, _IO(KH_MAGIC, 99)) < 0 && errno == ENOTTY ?
	       "ENOTTY" : "unexpected");
	close(fd);
	return bad;
}
