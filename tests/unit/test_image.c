// SPDX-License-Identifier: MIT
/* test_image.c - image detection, selection and layer listing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/digest.h"
#include "layerfs/image.h"
#include "image_internal.h" /* lf_image_open_beneath() */
#include "lf_test.h"

/*
 * A small deterministic image generator (python3, standard library only):
 *   oci DIR NAME...       one image per name, ref.name annotations
 *   multi DIR             an image index (linux/amd64, linux/arm64/v8)
 *   flat DIR              index.json listing per-platform manifests, unnamed
 *   dockerblobs TAR NAME...  docker-archive in the blobs/sha256 form
 *   legacy IN OUT         rewrite a skopeo docker-archive to <id>/layer.tar
 *   edit DIR CODE         run CODE on the first manifest `m`, rewrite it
 */
static const char mk_py[] =
	"import sys, os, json, hashlib, tarfile, io, gzip\n"
	"\n"
	"def blob(d, data):\n"
	"    h = hashlib.sha256(data).hexdigest()\n"
	"    os.makedirs(d + '/blobs/sha256', exist_ok=True)\n"
	"    open(d + '/blobs/sha256/' + h, 'wb').write(data)\n"
	"    return 'sha256:' + h\n"
	"\n"
	"def layer_tar(files):\n"
	"    b = io.BytesIO()\n"
	"    with tarfile.open(fileobj=b, mode='w', format=tarfile.PAX_FORMAT) "
	"as t:\n"
	"        for name, content in files:\n"
	"            ti = tarfile.TarInfo(name)\n"
	"            ti.size = len(content)\n"
	"            ti.mtime = 1\n"
	"            t.addfile(ti, io.BytesIO(content))\n"
	"    return b.getvalue()\n"
	"\n"
	"def image(d, seed, arch='amd64', variant=None):\n"
	"    layers, diff_ids, hist = [], [], []\n"
	"    for i, gz in enumerate((True, False)):\n"
	"        raw = layer_tar([('f%d' % i, ('%s-%d' % (seed, "
	"i)).encode())])\n"
	"        diff_ids.append('sha256:' + hashlib.sha256(raw).hexdigest())\n"
	"        data = gzip.compress(raw, mtime=0) if gz else raw\n"
	"        mt = 'application/vnd.oci.image.layer.v1.tar' + ('+gzip' if "
	"gz else '')\n"
	"        layers.append({'mediaType': mt, 'digest': blob(d, data),\n"
	"                       'size': len(data)})\n"
	"        hist.append({'created': '2024-01-0%dT00:00:00Z' % (i + 1),\n"
	"                     'created_by': 'step %d' % i})\n"
	"        if i == 0:\n"
	"            hist.append({'created_by': 'ENV x=1', 'empty_layer': "
	"True})\n"
	"    cfg = {'architecture': arch, 'os': 'linux', 'config': {},\n"
	"           'rootfs': {'type': 'layers', 'diff_ids': diff_ids},\n"
	"           'history': hist}\n"
	"    if variant:\n"
	"        cfg['variant'] = variant\n"
	"    c = json.dumps(cfg).encode()\n"
	"    man = {'schemaVersion': 2,\n"
	"           'mediaType': "
	"'application/vnd.oci.image.manifest.v1+json',\n"
	"           'config': {'mediaType': "
	"'application/vnd.oci.image.config.v1+json',\n"
	"                      'digest': blob(d, c), 'size': len(c)},\n"
	"           'layers': layers}\n"
	"    m = json.dumps(man, indent=1).encode()\n"
	"    desc = {'mediaType': man['mediaType'], 'digest': blob(d, m),\n"
	"            'size': len(m),\n"
	"            'platform': {'os': 'linux', 'architecture': arch}}\n"
	"    if variant:\n"
	"        desc['platform']['variant'] = variant\n"
	"    return desc\n"
	"\n"
	"def layout(d, manifests):\n"
	"    os.makedirs(d, exist_ok=True)\n"
	"    open(d + '/oci-layout', "
	"'w').write(json.dumps({'imageLayoutVersion': '1.0.0'}))\n"
	"    idx = {'schemaVersion': 2, 'manifests': manifests}\n"
	"    open(d + '/index.json', 'w').write(json.dumps(idx, indent=1))\n"
	"\n"
	"def named(desc, name):\n"
	"    desc = dict(desc)\n"
	"    desc['annotations'] = {'org.opencontainers.image.ref.name': "
	"name}\n"
	"    return desc\n"
	"\n"
	"def platforms(d):\n"
	"    return [image(d, 'amd', 'amd64'), image(d, 'arm', 'arm64', "
	"'v8')]\n"
	"\n"
	"def multi(d, name):\n"
	"    sub = {'schemaVersion': 2,\n"
	"           'mediaType': 'application/vnd.oci.image.index.v1+json',\n"
	"           'manifests': platforms(d)}\n"
	"    s = json.dumps(sub).encode()\n"
	"    return named({'mediaType': sub['mediaType'], 'digest': blob(d, "
	"s),\n"
	"                  'size': len(s)}, name)\n"
	"\n"
	"def docker_blobs(out, names):\n"
	"    d = out + '.d'\n"
	"    os.makedirs(d, exist_ok=True)\n"
	"    entries = []\n"
	"    for n in names:\n"
	"        desc = image(d, n)\n"
	"        man = json.load(open(d + '/blobs/sha256/' + "
	"desc['digest'][7:]))\n"
	"        entries.append({'Config': 'blobs/sha256/' + "
	"man['config']['digest'][7:],\n"
	"                        'RepoTags': [n],\n"
	"                        'Layers': ['blobs/sha256/' + l['digest'][7:]\n"
	"                                   for l in man['layers']]})\n"
	"    open(d + '/manifest.json', 'w').write(json.dumps(entries, "
	"indent=1))\n"
	"    with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:\n"
	"        t.add(d + '/manifest.json', 'manifest.json')\n"
	"        t.add(d + '/blobs', 'blobs')\n"
	"\n"
	"def legacy(src, out):\n"
	"    t = tarfile.open(src)\n"
	"    members = t.getmembers()\n"
	"    links = {os.path.basename(m.linkname): m.name\n"
	"             for m in members if m.issym()}\n"
	"    man = json.load(t.extractfile('manifest.json'))\n"
	"    for e in man:\n"
	"        e['Layers'] = [links[l] for l in e['Layers']]\n"
	"    data = json.dumps(man).encode()\n"
	"    with tarfile.open(out, 'w') as o:\n"
	"        for m in members:\n"
	"            if m.name == 'manifest.json':\n"
	"                m.size = len(data)\n"
	"                o.addfile(m, io.BytesIO(data))\n"
	"            elif m.isfile():\n"
	"                o.addfile(m, t.extractfile(m))\n"
	"            else:\n"
	"                o.addfile(m)\n"
	"\n"
	"def edit(d, code):\n"
	"    idx = json.load(open(d + '/index.json'))\n"
	"    desc = idx['manifests'][0]\n"
	"    m = json.load(open(d + '/blobs/sha256/' + desc['digest'][7:]))\n"
	"    exec(code, {'m': m, 'd': d, 'os': os})\n"
	"    data = json.dumps(m).encode()\n"
	"    desc['digest'] = blob(d, data)\n"
	"    desc['size'] = len(data)\n"
	"    open(d + '/index.json', 'w').write(json.dumps(idx))\n"
	"\n"
	"cmd, d = sys.argv[1], sys.argv[2]\n"
	"if cmd == 'oci':\n"
	"    layout(d, [named(image(d, n), n) for n in sys.argv[3:]])\n"
	"elif cmd == 'multi':\n"
	"    layout(d, [multi(d, 'multi:1')])\n"
	"elif cmd == 'flat':\n"
	"    layout(d, platforms(d))\n"
	"elif cmd == 'dockerblobs':\n"
	"    docker_blobs(d, sys.argv[3:])\n"
	"elif cmd == 'legacy':\n"
	"    legacy(d, sys.argv[3])\n"
	"elif cmd == 'edit':\n"
	"    edit(d, sys.argv[3])\n";

static int sh(const char *cmd)
{
	int r = system(cmd);

	if (r)
		printf("# command failed (%d): %s\n", r, cmd);
	return r;
}

static void mk(void)
{
	FILE *f = fopen("mk.py", "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fputs(mk_py, f);
	fclose(f);
}

static int open_img(const char *path, const char *ref, const char *platform,
		    struct lf_image **img, struct lf_err *err)
{
	struct lf_image_opts o = { .ref = ref, .platform = platform };
	int ret;

	lf_err_clear(err);
	*img = NULL;
	ret = lf_image_open(path, &o, img, err);
	if (ret)
		printf("# %s\n", err->msg);
	return ret;
}

/* sha256 of a layer's blob, read through its vfile */
static void blob_digest(const struct lf_image_layer *l, char out[LF_DIGEST_LEN])
{
	uint64_t size = lf_vfile_size(l->blob);
	char *p = malloc(size + 1);

	out[0] = '\0';
	if (p && lf_vfile_pread(l->blob, p, size, 0) == (ssize_t)size)
		lf_sha256_mem(p, size, out);
	free(p);
}

static bool is_gzip(const struct lf_vfile *vf)
{
	unsigned char m[2] = { 0, 0 };

	return lf_vfile_pread(vf, m, 2, 0) == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

/* Common checks for the image made by `mk.py oci DIR a:1` (two layers). */
static void check_image_a(struct lf_image *img)
{
	const struct lf_image_layer *l0, *l1;
	char d[LF_DIGEST_LEN];
	size_t len = 0;
	const char *cfg;

	CHECK_EQ_INT(lf_image_layer_count(img), 2);
	if (lf_image_layer_count(img) != 2)
		return;
	l0 = lf_image_layer(img, 0);
	l1 = lf_image_layer(img, 1);
	CHECK(lf_digest_valid(l0->diff_id) && lf_digest_valid(l1->diff_id));
	CHECK_EQ_STR(l0->created_by, "step 0");
	/* the empty_layer history entry in between is skipped */
	CHECK_EQ_STR(l1->created_by, "step 1");
	CHECK_EQ_STR(l1->created, "2024-01-02T00:00:00Z");
	CHECK(l1->comment == NULL);
	CHECK_EQ_INT(l0->size, lf_vfile_size(l0->blob));
	cfg = lf_image_config_json(img, &len);
	CHECK(cfg && len == strlen(cfg) && strstr(cfg, "diff_ids"));
	CHECK(cfg && lf_sha256_mem(cfg, len, d) == 0 &&
	      !strcmp(d, lf_image_config_digest(img)));
	/* the blob hashes to its digest, and to its diff_id if plain tar */
	blob_digest(l1, d);
	if (l1->digest[0])
		CHECK_EQ_STR(d, l1->digest);
	if (!is_gzip(l1->blob))
		CHECK_EQ_STR(d, l1->diff_id);
}

LF_TEST(oci_layout)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1"), 0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), 0);
	if (!img)
		return;
	CHECK_EQ_STR(lf_image_format(img), "oci-layout");
	CHECK_EQ_STR(lf_image_path(img), "img");
	CHECK_EQ_STR(lf_image_ref(img), "a:1");
	CHECK(lf_digest_valid(lf_image_manifest_digest(img)));
	CHECK_EQ_STR(lf_image_layer(img, 0)->media_type,
		     "application/vnd.oci.image.layer.v1.tar+gzip");
	CHECK(!strncmp(lf_image_layer(img, 0)->source, "blobs/sha256/", 13));
	check_image_a(img);
	lf_image_close(img);
}

LF_TEST(ref_selection)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1 b:2"), 0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "2 images, choose one with --ref: a:1, b:2"));
	CHECK_EQ_INT(open_img("img", "c:3", NULL, &img, &err), -ENOENT);
	CHECK(strstr(err.msg, "'c:3'") && strstr(err.msg, "a:1, b:2"));
	CHECK_EQ_INT(open_img("img", "b:2", NULL, &img, &err), 0);
	if (img) {
		CHECK_EQ_STR(lf_image_ref(img), "b:2");
		lf_image_close(img);
	}
	/* docker.io/library/ prefixes are the same name */
	CHECK_EQ_INT(open_img("img", "docker.io/library/a:1", NULL, &img, &err),
		     0);
	if (img) {
		CHECK_EQ_STR(lf_image_ref(img), "a:1");
		lf_image_close(img);
	}
	/* and podman's localhost/ (both ways) */
	CHECK_EQ_INT(open_img("img", "localhost/b:2", NULL, &img, &err), 0);
	if (img) {
		CHECK_EQ_STR(lf_image_ref(img), "b:2");
		lf_image_close(img);
	}
	CHECK_EQ_INT(sh("python3 mk.py oci img2 localhost/app:1 b:2"), 0);
	CHECK_EQ_INT(open_img("img2", "app:1", NULL, &img, &err), 0);
	if (img) {
		CHECK_EQ_STR(lf_image_ref(img), "localhost/app:1");
		lf_image_close(img);
	}
	CHECK_EQ_INT(open_img("img2", "localhost/b:3", NULL, &img, &err),
		     -ENOENT);
}

LF_TEST(ref_bare_tag)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	/* skopeo oci:dir:TAG writes the bare tag as ref.name */
	CHECK_EQ_INT(sh("python3 mk.py oci img latest 3.19"), 0);
	CHECK_EQ_INT(open_img("img", "alpine:3.19", NULL, &img, &err), 0);
	if (img) {
		CHECK_EQ_STR(lf_image_ref(img), "3.19");
		lf_image_close(img);
	}
	CHECK_EQ_INT(open_img("img", "3.19", NULL, &img, &err), 0);
	lf_image_close(img);
}

LF_TEST(platform_index)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py multi img"), 0);
	CHECK_EQ_INT(open_img("img", NULL, "linux/arm64", &img, &err), 0);
	if (img) {
		CHECK(strstr(lf_image_config_json(img, NULL), "arm64"));
		CHECK_EQ_STR(lf_image_ref(img), "multi:1");
		lf_image_close(img);
	}
	CHECK_EQ_INT(open_img("img", NULL, "linux/arm64/v8", &img, &err), 0);
	lf_image_close(img);
	CHECK_EQ_INT(open_img("img", "multi:1", "linux/amd64", &img, &err), 0);
	if (img) {
		CHECK(strstr(lf_image_config_json(img, NULL), "amd64"));
		lf_image_close(img);
	}
	CHECK_EQ_INT(open_img("img", NULL, "linux/s390x", &img, &err), -ENOENT);
	CHECK(strstr(err.msg, "linux/s390x") &&
	      strstr(err.msg, "linux/amd64, linux/arm64/v8"));
	CHECK_EQ_INT(open_img("img", NULL, "bogus", &img, &err), -EINVAL);
}

LF_TEST(platform_flat_index)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py flat img"), 0);
	CHECK_EQ_INT(open_img("img", NULL, "linux/arm64", &img, &err), 0);
	if (img) {
		CHECK(strstr(lf_image_config_json(img, NULL), "arm64"));
		CHECK(lf_image_ref(img) == NULL);
		lf_image_close(img);
	}
}

LF_TEST(oci_archive)
{
	struct lf_image *img, *dir;
	struct lf_err err;
	size_t i;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1 && skopeo copy -q "
			"oci:img:a:1 oci-archive:x.tar:a:1"),
		     0);
	CHECK_EQ_INT(open_img("x.tar", NULL, NULL, &img, &err), 0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &dir, &err), 0);
	if (!img || !dir)
		goto out;
	CHECK_EQ_STR(lf_image_format(img), "oci-archive");
	check_image_a(img);
	for (i = 0; i < lf_image_layer_count(img); i++) {
		const struct lf_image_layer *l = lf_image_layer(img, i);
		char d[LF_DIGEST_LEN];

		/* read in place: a range inside the archive file */
		CHECK(lf_vfile_base(l->blob) > 0);
		blob_digest(l, d);
		CHECK_EQ_STR(d, l->digest);
		CHECK_EQ_STR(l->diff_id, lf_image_layer(dir, i)->diff_id);
	}
out:
	lf_image_close(img);
	lf_image_close(dir);
}

LF_TEST(docker_archive_skopeo)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1 && skopeo copy -q "
			"oci:img:a:1 docker-archive:d.tar:foo:1"),
		     0);
	CHECK_EQ_INT(open_img("d.tar", "foo:1", NULL, &img, &err), 0);
	if (!img)
		return;
	CHECK_EQ_STR(lf_image_format(img), "docker-archive");
	CHECK_EQ_STR(lf_image_manifest_digest(img), "");
	CHECK_EQ_STR(lf_image_ref(img), "docker.io/library/foo:1");
	check_image_a(img);
	CHECK_EQ_STR(lf_image_layer(img, 0)->digest, "");
	CHECK_EQ_STR(lf_image_layer(img, 0)->media_type, "");
	lf_image_close(img);
}

LF_TEST(docker_archive_legacy_links)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	/* Layers name <id>/layer.tar, a symlink to ../<diffid>.tar */
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1 && skopeo copy -q "
			"oci:img:a:1 docker-archive:d.tar:foo:1 && "
			"python3 mk.py legacy d.tar l.tar"),
		     0);
	CHECK_EQ_INT(open_img("l.tar", NULL, NULL, &img, &err), 0);
	if (!img)
		return;
	CHECK(strstr(lf_image_layer(img, 0)->source, "/layer.tar") != NULL);
	check_image_a(img);
	lf_image_close(img);
}

LF_TEST(docker_archive_blobs)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py dockerblobs d.tar x:1 y:2"), 0);
	CHECK_EQ_INT(open_img("d.tar", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "2 images, choose one with --ref: x:1, y:2"));
	CHECK_EQ_INT(open_img("d.tar", "z:9", NULL, &img, &err), -ENOENT);
	CHECK_EQ_INT(open_img("d.tar", "y:2", NULL, &img, &err), 0);
	if (!img)
		return;
	CHECK_EQ_STR(lf_image_format(img), "docker-archive");
	CHECK(lf_digest_valid(lf_image_layer(img, 0)->digest));
	CHECK(lf_digest_valid(lf_image_layer(img, 1)->digest));
	lf_image_close(img);
}

LF_TEST(malformed_json)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1 && "
			"printf '{\\n \"manifests\": [\\n  {,\\n' > "
			"img/index.json"),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "'img': index.json: invalid JSON at line 3"));
	CHECK_EQ_INT(sh("python3 mk.py dockerblobs d.tar x:1 && "
			"mkdir t && tar -xf d.tar -C t && "
			"echo '[{' > t/manifest.json && "
			"tar -cf bad.tar -C t ."),
		     0);
	CHECK_EQ_INT(open_img("bad.tar", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "'bad.tar': manifest.json: invalid JSON"));
}

LF_TEST(missing_blob)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1 && python3 mk.py edit img "
			"\"os.remove(d + '/blobs/sha256/' + "
			"m['layers'][1]['digest'][7:])\""),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -ENOENT);
	CHECK(strstr(err.msg, "layer 2 (sha256:") &&
	      strstr(err.msg, "): blob blobs/sha256/") &&
	      strstr(err.msg, " is missing"));
	CHECK_EQ_INT(sh("python3 mk.py edit img \"m['layers'][1]['mediaType']"
			" = 'application/vnd.oci.image.layer."
			"nondistributable.v1.tar'\""),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -ENOENT);
	CHECK(strstr(err.msg, "non-distributable") != NULL);
}

LF_TEST(hostile_digest)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1 && python3 mk.py edit img "
			"\"m['layers'][1]['digest'] = 'sha256:../../x'\""),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "digest 'sha256:../../x' is not a valid "
			      "digest") != NULL);
	/* the OCI grammar with another algorithm: said so, not "invalid" */
	CHECK_EQ_INT(sh("python3 mk.py edit img \"m['layers'][1]['digest'] = "
			"'sha512:' + 'ab' * 64\""),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "unsupported digest algorithm 'sha512'") != NULL);
	CHECK_EQ_INT(sh("python3 mk.py edit img \"m['layers'][1]['digest'] = "
			"'sha512:a/b'\""),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "is not a valid digest") != NULL);
	/* docker-archive: member names that climb out are never found */
	CHECK_EQ_INT(sh("python3 mk.py dockerblobs d.tar x:1 && "
			"mkdir t && tar -xf d.tar -C t && "
			"python3 -c \"import json; p = 't/manifest.json'; "
			"m = json.load(open(p)); m[0]['Config'] = "
			"'../etc/passwd'; "
			"json.dump(m, open(p, 'w'))\" && "
			"tar -cf bad.tar -C t ."),
		     0);
	CHECK_EQ_INT(open_img("bad.tar", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "invalid member name") != NULL);
}

LF_TEST(manifest_checks)
{
	struct lf_image *img;
	struct lf_err err;

	mk();
	CHECK_EQ_INT(sh("python3 mk.py oci img a:1 && python3 mk.py edit img "
			"\"m['layers'][0]['mediaType'] = "
			"'application/x-foo'\""),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "'img': layer 1: unsupported media type "
			      "'application/x-foo'"));
	CHECK_EQ_INT(sh("rm -rf img && python3 mk.py oci img a:1 && "
			"python3 mk.py edit img \"m['layers'][1]['size'] += "
			"1\""),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "layer 2") && strstr(err.msg, "manifest says"));
	CHECK_EQ_INT(sh("rm -rf img && python3 mk.py oci img a:1 && "
			"python3 mk.py edit img \"m['layers'].pop()\""),
		     0);
	CHECK_EQ_INT(open_img("img", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "2 diff_ids for 1 layers") != NULL);
}

LF_TEST(not_an_image)
{
	struct lf_image *img;
	struct lf_err err;

	CHECK_EQ_INT(sh("mkdir empty && head -c 3000 /dev/urandom | "
			"tr '\\037' x > junk && tar -cf plain.tar empty"),
		     0);
	CHECK_EQ_INT(open_img("empty", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "not an OCI image layout") != NULL);
	CHECK_EQ_INT(open_img("junk", NULL, NULL, &img, &err), -EINVAL);
	CHECK_EQ_INT(open_img("plain.tar", NULL, NULL, &img, &err), -EINVAL);
	CHECK(strstr(err.msg, "not an image archive") != NULL);
	CHECK_EQ_INT(open_img("nope", NULL, NULL, &img, &err), -ENOENT);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

/* Both ways of opening beneath the layout (openat2 and the walk) agree. */
static void beneath_case(int dirfd, const char *rel, int want)
{
	int walk;

	for (walk = 0; walk < 2; walk++) {
		int fd = lf_image_open_beneath(dirfd, rel, walk);
		struct stat sb;

		if (want >= 0) {
			CHECK(fd >= 0);
			if (fd >= 0 && fstat(fd, &sb) == 0)
				CHECK_EQ_INT(sb.st_size, want);
		} else {
			CHECK_EQ_INT(fd < 0 ? fd : 0, want);
		}
		if (fd >= 0)
			close(fd);
	}
}

LF_TEST(open_beneath)
{
	int dirfd;

	CHECK_EQ_INT(sh("mkdir -p out l/a/b && printf 12345 > l/a/b/f && "
			"printf x > out/canary && mkfifo l/fifo && "
			"ln -s b/f l/a/in && ln -s ../../a/b/../in l/a/b/up && "
			"ln -s ../../out/canary l/a/esc && "
			"ln -s /etc/passwd l/abs && ln -s loop2 l/loop1 && "
			"ln -s loop1 l/loop2 && ln -s ../out l/outdir && "
			"ln -s /proc/self/root/etc/passwd l/magic && "
			"ln -s a l/adir"),
		     0);
	dirfd = open("l", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dirfd >= 0);
	if (dirfd < 0)
		return;
	beneath_case(dirfd, "a/b/f", 5);
	beneath_case(dirfd, "a/in", 5);
	beneath_case(dirfd, "a/b/up", 5);
	beneath_case(dirfd, "adir/b/../in", 5);
	beneath_case(dirfd, "a/esc", -EXDEV);
	beneath_case(dirfd, "abs", -EXDEV);
	beneath_case(dirfd, "../out/canary", -EXDEV);
	beneath_case(dirfd, "outdir/canary", -EXDEV);
	beneath_case(dirfd, "loop1", -ELOOP);
	beneath_case(dirfd, "missing", -ENOENT);
	/* an absolute magic link is refused either way (EXDEV before ELOOP) */
	beneath_case(dirfd, "magic", -EXDEV);
	/* a FIFO opens at once (O_NONBLOCK): the caller refuses its type */
	beneath_case(dirfd, "fifo", 0);
	close(dirfd);
}
