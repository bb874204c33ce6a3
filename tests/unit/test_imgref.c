// SPDX-License-Identifier: MIT
/*
 * test_imgref.c - IMAGE arguments against a table of what skopeo and
 * podman accept and refuse (containers-transports(5), the distribution
 * reference grammar, Docker's default registry and `library/`).
 */
#include "lf_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "layerfs/imgref.h"

/* The parse of `arg` as one line: "transport|path|ref|@N" or
 * "docker|host|repo|tag|digest", or "E<errno>". */
static const char *show(const char *arg)
{
	static char out[1024];
	struct lf_err err = { 0 };
	struct lf_imgref r;
	int ret = lf_imgref_parse(arg, &r, &err);

	if (ret) {
		snprintf(out, sizeof(out), "E%d", -ret);
		CHECK(err.msg[0] != '\0');
		return out;
	}
	if (r.kind == LF_IMGREF_CSTORE)
		snprintf(out, sizeof(out), "cs|%s|%s|%s|%s|%s",
			 r.driver ? r.driver : "-",
			 r.graphroot ? r.graphroot : "-",
			 r.runroot ? r.runroot : "-",
			 r.options ? r.options : "-", r.image);
	else if (r.kind == LF_IMGREF_DOCKER)
		snprintf(out, sizeof(out), "docker|%s|%s|%s|%s", r.host, r.repo,
			 r.tag ? r.tag : "-", r.digest ? r.digest : "-");
	else if (r.by_index)
		snprintf(out, sizeof(out), "%s|%s|@%zu",
			 lf_imgref_transport(&r), r.path, r.index);
	else
		snprintf(out, sizeof(out), "%s|%s|%s", lf_imgref_transport(&r),
			 r.path, r.ref ? r.ref : "-");
	lf_imgref_release(&r);
	return out;
}

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* containers-storage: split as containers/image's ParseReference does */
LF_TEST(containers_storage)
{
	CHECK_EQ_STR(show("containers-storage:busybox"), "cs|-|-|-|-|busybox");
	CHECK_EQ_STR(show("containers-storage:[/g]img:v1"),
		     "cs|-|/g|-|-|img:v1");
	CHECK_EQ_STR(show("containers-storage:[vfs@/g+/r:a=b,c]a/b@sha256:"
			  "x"),
		     "cs|vfs|/g|/r|a=b,c|a/b@sha256:x");
	CHECK_EQ_STR(show("containers-storage:[overlay@/g+/r]@abc"),
		     "cs|overlay|/g|/r|-|@abc");
	CHECK_EQ_STR(show("containers-storage:[/g:opt]x"), "cs|-|/g|-|opt|x");
	CHECK_EQ_STR(show("containers-storage:[/g+/r:o+p]x"),
		     "cs|-|/g|/r|o+p|x");
	CHECK_EQ_STR(show("containers-storage:[+/r]x"), "cs|-|-|/r|-|x");
	CHECK_EQ_STR(show("containers-storage:[]x"), "E22");
	CHECK_EQ_STR(show("containers-storage:[@/g]x"), "E22");
	CHECK_EQ_STR(show("containers-storage:[vfs@]x"), "E22");
	CHECK_EQ_STR(show("containers-storage:[g]x"), "E22");
	CHECK_EQ_STR(show("containers-storage:[/g+r]x"), "E22");
	CHECK_EQ_STR(show("containers-storage:[/g"), "E22");
	CHECK_EQ_STR(show("containers-storage:[/g]"), "E22");
	CHECK_EQ_STR(show("containers-storage:"), "E22");
}

LF_TEST(file_transports)
{
	CHECK_EQ_STR(show("img"), "|img|-");
	CHECK_EQ_STR(show("/a/b:c"), "|/a/b:c|-"); /* not a transport */
	CHECK_EQ_STR(show("oci:dir"), "oci|dir|-");
	CHECK_EQ_STR(show("oci:dir:v1"), "oci|dir|v1");
	CHECK_EQ_STR(show("oci:dir:@2"), "oci|dir|@2");
	CHECK_EQ_STR(show("oci-archive:a.tar:name:tag"),
		     "oci-archive|a.tar|name:tag");
	CHECK_EQ_STR(show("docker-archive:s.tar"), "docker-archive|s.tar|-");
	CHECK_EQ_STR(show("docker-archive:s.tar:busybox:latest"),
		     "docker-archive|s.tar|busybox:latest");
	CHECK_EQ_STR(show("docker-archive:s.tar:@1"),
		     "docker-archive|s.tar|@1");
	CHECK_EQ_STR(show("docker-archive:s.tar:@"), "E22");
	CHECK_EQ_STR(show("docker-archive:s.tar:@-1"), "E22");
	CHECK_EQ_STR(show("docker-archive:s.tar:@1x"), "E22");
	CHECK_EQ_STR(show("docker-archive:s.tar:@99999999999999999999999"),
		     "E22");
	CHECK_EQ_STR(show("oci:"), "E22");
	CHECK_EQ_STR(show("oci::tag"), "E22");
	CHECK_EQ_STR(show("oci:dir:"), "E22");
	CHECK_EQ_STR(show("dir:/tmp/x"), "E93");
	CHECK_EQ_STR(show("docker-daemon:busybox:latest"), "E93");
	/* a file that exists is a path, whatever it is called */
	CHECK_EQ_INT(mkdir("oci:x", 0755), 0);
	CHECK_EQ_STR(show("oci:x"), "|oci:x|-");
	/* bytes are bytes */
	CHECK_EQ_STR(show("oci:caf\xe9:\xff"), "oci|caf\xe9|\xff");
}

LF_TEST(docker_names)
{
	CHECK_EQ_STR(show("docker://busybox"),
		     "docker|docker.io|library/busybox|latest|-");
	CHECK_EQ_STR(show("docker://busybox:1.36"),
		     "docker|docker.io|library/busybox|1.36|-");
	CHECK_EQ_STR(show("docker://user/app"),
		     "docker|docker.io|user/app|latest|-");
	CHECK_EQ_STR(show("docker://localhost/app"),
		     "docker|localhost|app|latest|-");
	CHECK_EQ_STR(show("docker://localhost:5000/a/b/c:v1.2-rc_3"),
		     "docker|localhost:5000|a/b/c|v1.2-rc_3|-");
	CHECK_EQ_STR(show("docker://127.0.0.1:5000/app@sha256:" D64),
		     "docker|127.0.0.1:5000|app|-|sha256:" D64);
	CHECK_EQ_STR(show("docker://quay.io/org/app:t@sha256:" D64),
		     "docker|quay.io|org/app|t|sha256:" D64);
	CHECK_EQ_STR(show("docker://[::1]:5000/app"),
		     "docker|[::1]:5000|app|latest|-");
	CHECK_EQ_STR(show("docker://Registry/app"),
		     "docker|Registry|app|latest|-");
	CHECK_EQ_STR(show("docker://a.b-c.d-e/f"),
		     "docker|a.b-c.d-e|f|latest|-");
	CHECK_EQ_STR(show("docker://a.b_c/f"), "E22"); /* no _ in hosts */
	CHECK_EQ_STR(show("docker://x/a__b.c---d"),
		     "docker|docker.io|x/a__b.c---d|latest|-");
	/* refused */
	CHECK_EQ_STR(show("docker:busybox"), "E22");
	CHECK_EQ_STR(show("docker://"), "E22");
	CHECK_EQ_STR(show("docker://BusyBox"), "E22");
	CHECK_EQ_STR(show("docker://a/-b"), "E22");
	CHECK_EQ_STR(show("docker://a/b-"), "E22");
	CHECK_EQ_STR(show("docker://a//b"), "E22");
	CHECK_EQ_STR(show("docker://a/b/"), "E22");
	CHECK_EQ_STR(show("docker://a/b___c"), "E22");
	CHECK_EQ_STR(show("docker://app:"), "E22");
	CHECK_EQ_STR(show("docker://app:-x"), "E22");
	CHECK_EQ_STR(show("docker://app:a/b"), "E22");
	CHECK_EQ_STR(show("docker://-bad.host/app"), "E22");
	CHECK_EQ_STR(show("docker://host:port/app"), "E22");
	CHECK_EQ_STR(show("docker://host:123456/app"), "E22");
	CHECK_EQ_STR(show("docker://app@sha256:abc"), "E22");
	CHECK_EQ_STR(show("docker://app@sha256:" D64 "0"), "E22");
	CHECK_EQ_STR(show("docker://app@sha512:" D64 D64), "E93");
	CHECK_EQ_STR(show("docker://app@:" D64), "E22");
	CHECK_EQ_STR(show("docker://caf\xc3\xa9"), "E22");
}

LF_TEST(limits)
{
	char name[600], tag[200];

	/* a tag of 128 characters is the longest */
	memset(tag, 'a', 128);
	tag[128] = '\0';
	snprintf(name, sizeof(name), "docker://app:%s", tag);
	CHECK(strncmp(show(name), "docker|", 7) == 0);
	snprintf(name, sizeof(name), "docker://app:%sa", tag);
	CHECK_EQ_STR(show(name), "E22");
	/* a name of more than 255 bytes */
	strcpy(name, "docker://h.io/");
	memset(name + 14, 'a', 300);
	name[314] = '\0';
	CHECK_EQ_STR(show(name), "E22");
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}
