/* prog-info: what the kernel says about the loaded sdn-filter programs, for
 * `cargo xtask kernel-test` (Debian 12's bpftool 7.1 does not print verified_insns).
 *
 * usage: prog-info PIN_DIR
 * Opens PIN_DIR/prog (the attached sdn_filter) and every program in the prog array
 * PIN_DIR/maps/SDN_JUMP (sdn_classify, sdn_log), and prints one line per program:
 *   PROG name=sdn_filter id=12 insns=2422 xlated=19376 jited=12641 verified_insns=1234
 * insns = xlated / 8 (the program's BPF instructions after the kernel's rewrites);
 * verified_insns = instructions the verifier processed (kernel 5.16+; 0 when not reported).
 * Built statically on the host (gcc -static) so it runs in the test initramfs as is.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int obj_get(const char *path)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.pathname = (uint64_t)(uintptr_t)path;
	return sys_bpf(BPF_OBJ_GET, &a);
}

static int show(int fd)
{
	struct bpf_prog_info info;
	union bpf_attr a;
	memset(&info, 0, sizeof(info));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = fd;
	a.info.info_len = sizeof(info);
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0) {
		perror("BPF_OBJ_GET_INFO_BY_FD");
		return 1;
	}
	printf("PROG name=%s id=%u insns=%u xlated=%u jited=%u verified_insns=%u\n", info.name,
	       info.id, info.xlated_prog_len / 8, info.xlated_prog_len, info.jited_prog_len,
	       info.verified_insns);
	return 0;
}

int main(int argc, char **argv)
{
	char path[4096];
	int fd, map, rc = 0;
	uint32_t key;
	if (argc != 2) {
		fprintf(stderr, "usage: prog-info PIN_DIR\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/prog", argv[1]);
	fd = obj_get(path);
	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	rc |= show(fd);
	snprintf(path, sizeof(path), "%s/maps/SDN_JUMP", argv[1]);
	map = obj_get(path);
	if (map < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	for (key = 0; key < 16; key++) {
		union bpf_attr a;
		uint32_t id = 0;
		memset(&a, 0, sizeof(a));
		a.map_fd = map;
		a.key = (uint64_t)(uintptr_t)&key;
		a.value = (uint64_t)(uintptr_t)&id;
		if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &a) != 0)
			continue; /* empty slot or past the end */
		memset(&a, 0, sizeof(a));
		a.prog_id = id;
		fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
		if (fd < 0) {
			fprintf(stderr, "program id %u: %s\n", id, strerror(errno));
			rc = 1;
			continue;
		}
		rc |= show(fd);
	}
	return rc;
}
