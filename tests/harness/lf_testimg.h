/* SPDX-License-Identifier: MIT */
/*
 * lf_testimg.h - a small OCI image for unit tests, written by Python's
 * tarfile, gzip, hashlib and json (not by layerfs) into "img" in the cwd.
 */
#ifndef LAYERFS_LF_TESTIMG_H
#define LAYERFS_LF_TESTIMG_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lf_test.h"

/* An OCI layout "img" of two gzip layers:
 *   1: etc/ (0750, 7:8, mtime 1000), etc/conf (0640, 7:8, mtime 2000,
 *      user.tag=blue, LF_TESTIMG_CONF_SIZE bytes of lf_testimg_byte()), etc/old, link -> etc/conf
 *   2: etc/.wh.old, etc/new ("new\n")
 * written by python's tarfile, gzip and json, not by layerfs. */
#define LF_TESTIMG_CONF_SIZE (300u << 10)
static const char lf_testimg_py[] =
	"import hashlib, io, json, os, tarfile, gzip\n"
	"def blob(data):\n"
	"    h = hashlib.sha256(data).hexdigest()\n"
	"    open('img/blobs/sha256/' + h, 'wb').write(data)\n"
	"    return 'sha256:' + h\n"
	"def tar(members):\n"
	"    b = io.BytesIO()\n"
	"    with tarfile.open(fileobj=b, mode='w', format=tarfile.PAX_FORMAT) "
	"as t:\n"
	"        for name, typ, data, mode, mtime, extra in members:\n"
	"            ti = tarfile.TarInfo(name)\n"
	"            ti.type, ti.mode, ti.mtime = typ, mode, mtime\n"
	"            ti.uid, ti.gid = 7, 8\n"
	"            if typ == tarfile.SYMTYPE:\n"
	"                ti.linkname = data\n"
	"                data = b''\n"
	"            ti.size = len(data)\n"
	"            ti.pax_headers = extra\n"
	"            t.addfile(ti, io.BytesIO(data))\n"
	"    return b.getvalue()\n"
	"conf = bytes((i * 31 + 7) & 255 for i in range(%u))\n"
	"l1 = tar([('etc', tarfile.DIRTYPE, b'', 0o750, 1000, {}),\n"
	"          ('etc/conf', tarfile.REGTYPE, conf, 0o640, 2000,\n"
	"           {'SCHILY.xattr.user.tag': 'blue'}),\n"
	"          ('etc/old', tarfile.REGTYPE, b'old\\n', 0o644, 3000, {}),\n"
	"          ('link', tarfile.SYMTYPE, 'etc/conf', 0o777, 4000, {})])\n"
	"l2 = tar([('etc/.wh.old', tarfile.REGTYPE, b'', 0o644, 5000, {}),\n"
	"          ('etc/new', tarfile.REGTYPE, b'new\\n', 0o644, 5000, {})])\n"
	"os.makedirs('img/blobs/sha256')\n"
	"layers = []\n"
	"for raw in (l1, l2):\n"
	"    gz = gzip.compress(raw, mtime=0)\n"
	"    layers.append({'mediaType':\n"
	"                   'application/vnd.oci.image.layer.v1.tar+gzip',\n"
	"                   'digest': blob(gz), 'size': len(gz)})\n"
	"cfg = json.dumps({'architecture': 'amd64', 'os': 'linux',\n"
	"                  'rootfs': {'type': 'layers', 'diff_ids':\n"
	"                   ['sha256:' + hashlib.sha256(r).hexdigest()\n"
	"                    for r in (l1, l2)]}}).encode()\n"
	"mt = 'application/vnd.oci.image.manifest.v1+json'\n"
	"man = json.dumps({'schemaVersion': 2, 'mediaType': mt,\n"
	"    'config': {'mediaType': "
	"'application/vnd.oci.image.config.v1+json',\n"
	"               'digest': blob(cfg), 'size': len(cfg)},\n"
	"    'layers': layers}).encode()\n"
	"open('img/oci-layout', 'w').write('{\"imageLayoutVersion\": "
	"\"1.0.0\"}')\n"
	"json.dump({'schemaVersion': 2, 'manifests': [{'mediaType': mt,\n"
	"           'digest': blob(man), 'size': len(man)}]},\n"
	"          open('img/index.json', 'w'))\n";

/* Byte i of etc/conf, as lf_testimg_py makes it. */
static inline unsigned char lf_testimg_byte(size_t i)
{
	return (unsigned char)((i * 31 + 7) & 255);
}

/* Write the image as "img" (Debian's python3 where it is); 0 or -1. */
static inline int lf_testimg_make(void)
{
	char cmd[64];
	FILE *f = fopen("mkimg.py", "w");

	CHECK(f != NULL);
	if (!f)
		return -1;
	fprintf(f, lf_testimg_py, LF_TESTIMG_CONF_SIZE);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s mkimg.py",
		 access("/usr/bin/python3", X_OK) ? "python3"
						  : "/usr/bin/python3");
	if (system(cmd)) {
		LF_FAIL("cannot make the image: %s", cmd);
		return -1;
	}
	return 0;
}

#endif /* LAYERFS_LF_TESTIMG_H */
