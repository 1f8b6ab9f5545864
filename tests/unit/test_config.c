/* test_config.c: defaults, files, --set, the error messages (unknown key with the closest one,
 * wrong type and range with file:line), every error of several files and --set reported at once,
 * reading one key of a stored config of another version, canonical serialisation round trip and
 * hashing, and the committed configs/reference.cfg being exactly what the key table generates. */
#include "../../src/config/config.h"
#include "../../src/core/err.h"
#include "../../src/core/lines.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *write_cfg(const char *text)
{
    static char path[600];
    const char *tmp = getenv("DM_TMP");
    snprintf(path, sizeof path, "%s/test_config.cfg", tmp ? tmp : "/tmp");
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static int fails_with(dm_cfg *c, const char *text, const char *expect)
{
    dm_error_clear();
    int rc = dm_cfg_load_file(c, write_cfg(text));
    int ok = rc == DM_ECONFIG && strstr(dm_error_message(), expect) != NULL;
    if (!ok) printf("  got rc %d: %s | hint: %s\n", rc, dm_error_message(), dm_error_hint_text());
    return ok;
}

/* defaults, a file with nested groups, and --set overrides, into c */
static void test_load(dm_cfg *c)
{
    CHECK(dm_cfg_int(c, "synth.users") == 2000 && dm_cfg_float(c, "synth.zipf") == 0.8, "defaults from the key table");
    CHECK(!strcmp(dm_cfg_str(c, "data.format"), "synth") && dm_cfg_bool(c, "modal.zero_is_missing") == 1, "string/bool defaults");
    CHECK(dm_cfg_len(c, "data.price_buckets") == 4 && dm_cfg_float_at(c, "data.price_buckets", 3) == 100, "list default");

    /* a file with nested groups, a list and an int given for a float */
    CHECK(dm_cfg_load_file(c, write_cfg("synth: { users = 77; zipf = 1; };\n"
                                        "data: { price_buckets = (5, 7.5); format = \"tsv\"; };\n"
                                        "modal: { visual: { path = \"v.npy\"; shape = [3, 4]; }; };\n")) == DM_OK,
          "%s", dm_error_message());
    CHECK(dm_cfg_int(c, "synth.users") == 77 && dm_cfg_float(c, "synth.zipf") == 1.0, "file values");
    CHECK(dm_cfg_len(c, "data.price_buckets") == 2 && dm_cfg_float_at(c, "data.price_buckets", 1) == 7.5, "file list");
    CHECK(dm_cfg_int_at(c, "modal.visual.shape", 1) == 4 && !strcmp(dm_cfg_str(c, "modal.visual.path"), "v.npy"), "3-level keys");
    char where[256];
    CHECK(strstr(dm_cfg_where(c, "synth.users", where, sizeof where), "test_config.cfg:1") != NULL, "origin: %s", where);

    /* --set overrides, with its own syntax */
    CHECK(dm_cfg_set(c, "synth.users=12") == DM_OK && dm_cfg_int(c, "synth.users") == 12, "--set int");
    CHECK(dm_cfg_set(c, "eval.ks=[1, 3]") == DM_OK || dm_key_index("eval.ks") < 0, "--set list");
    CHECK(dm_cfg_set(c, "data.price_buckets=1,2,3") == DM_OK && dm_cfg_len(c, "data.price_buckets") == 3, "--set list without brackets");
    CHECK(dm_cfg_set(c, "run.force=yes") == DM_OK && dm_cfg_bool(c, "run.force") == 1, "--set bool");
    CHECK(dm_cfg_set(c, "run.dir=\"a b\"") == DM_OK && !strcmp(dm_cfg_str(c, "run.dir"), "a b"), "--set quoted string");
}

/* one error at a time: each message and hint */
static void test_errors(void)
{
    dm_cfg e;
    dm_cfg_init(&e);
    CHECK(fails_with(&e, "synth: {\n  user = 5;\n};\n", "test_config.cfg:2: unknown key 'synth.user'") &&
              strstr(dm_error_hint_text(), "did you mean 'synth.users'"),
          "unknown key names the closest: %s", dm_error_hint_text());
    CHECK(fails_with(&e, "synthh: { users = 5; };\n", "unknown group 'synthh'"), "unknown group");
    CHECK(fails_with(&e, "synth: { users = 5.5; };\n", "test_config.cfg:1: 'synth.users' must be an integer, found a float"), "wrong type");
    CHECK(fails_with(&e, "synth: { users = 1; };\n", "'synth.users' = 1 is out of range [2, 1000000000]"), "range");
    CHECK(fails_with(&e, "data: { format = \"xml\"; };\n", "'data.format' = \"xml\" is not one of"), "enum");
    CHECK(fails_with(&e, "data: { price_buckets = [\"a\"]; };\n", "'data.price_buckets' must be a list of numbers"), "list element type");
    CHECK(fails_with(&e, "synth = 5;\n", "'synth' is a group of keys, not a value"), "group given a value");
    CHECK(fails_with(&e, "synth: { users = ; };\n", "test_config.cfg:1: syntax error"), "syntax error with line");
    CHECK(fails_with(&e, "data: {\n price_buckets = [5, 7.5]; };\n", "test_config.cfg:2: mismatched element type in array") &&
              strstr(dm_error_hint_text(), "write 5.0"),
          "libconfig arrays hold one type: %s", dm_error_hint_text());
    dm_error_clear();
    CHECK(dm_cfg_set(&e, "synth.zipf=x") == DM_ECONFIG && strstr(dm_error_message(), "--set synth.zipf: 'synth.zipf' must be a finite number"),
          "--set wrong type: %s", dm_error_message());
    CHECK(dm_cfg_set(&e, "nokey") == DM_ECONFIG && strstr(dm_error_message(), "expected group.key=value"), "--set syntax");
    CHECK(dm_cfg_load_file(&e, "/nonexistent/x.cfg") == DM_ECONFIG && strstr(dm_error_message(), "cannot open config '/nonexistent/x.cfg'"),
          "missing file");
    dm_cfg_free(&e);
}

/* every bad setting of a file and of --set at once, each with its place and what was expected */
static void test_error_list(void)
{
    dm_cfg m;
    dm_cfg_init(&m);
    const char *files[2] = {write_cfg("synth: {\n  user = 5;\n  zipf = -3.0;\n  items = 300;\n};\nfoo: { a = 1; };\n"),
                            "/nonexistent/y.cfg"};
    const char *sets[3] = {"sasrec.hiden=3", "synth.users=1", "eval.ks=1,x"};
    dm_error_clear();
    int rc = dm_cfg_load_all(&m, files, 2, sets, 3);
    const char *msg = dm_error_message();
    CHECK(rc == DM_ECONFIG && strstr(msg, "7 errors in the configuration:"), "all seven errors counted: %s", msg);
    static const char *const want[] = {"test_config.cfg:2: unknown key 'synth.user'", "did you mean 'synth.users'",
                                       "test_config.cfg:3: 'synth.zipf' = -3 is out of range", "test_config.cfg:6: unknown group 'foo'",
                                       "cannot open config '/nonexistent/y.cfg'", "--set: unknown key 'sasrec.hiden'",
                                       "did you mean 'sasrec.hidden'", "--set synth.users: 'synth.users' = 1 is out of range",
                                       "--set eval.ks: 'eval.ks' must be an integer, found 'x'"};
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) CHECK(strstr(msg, want[k]) != NULL, "the list names: %s", want[k]);
    const char *p1 = strstr(msg, "synth.user'"), *p2 = strstr(msg, "'synth.zipf'"), *p3 = strstr(msg, "sasrec.hiden");
    CHECK(p1 && p2 && p3 && p1 < p2 && p2 < p3, "in the order of the files, then --set");
    CHECK(dm_cfg_int(&m, "synth.items") == 300, "the good settings between the bad ones are applied");
    /* one error alone keeps its own message and hint */
    dm_error_clear();
    const char *one[1] = {"synth.user=4"};
    CHECK(dm_cfg_load_all(&m, NULL, 0, one, 1) == DM_ECONFIG && !strncmp(dm_error_message(), "--set: unknown key 'synth.user'", 31) &&
              strstr(dm_error_hint_text(), "did you mean 'synth.users'"),
          "a single error as it is: %s", dm_error_message());
    CHECK(dm_cfg_load_all(&m, NULL, 0, NULL, 0) == DM_OK, "nothing to load");
    /* more errors than a message holds: the first ones listed, the rest counted */
    dm_buf many = {0};
    dm_buf_adds(&many, "synth: {\n");
    for (int k = 0; k < 60; k++) dm_buf_printf(&many, "  user%d = %d;\n", k, k);
    dm_buf_adds(&many, "};\n");
    const char *mf[1] = {write_cfg(many.data)};
    dm_error_clear();
    CHECK(dm_cfg_load_all(&m, mf, 1, NULL, 0) == DM_ECONFIG && strstr(dm_error_message(), "60 errors in the configuration:") &&
              strstr(dm_error_message(), "unknown key 'synth.user0'") && strstr(dm_error_hint_text(), "more not shown") &&
              strlen(dm_error_message()) < 2048,
          "60 errors: %zu bytes, hint %s", strlen(dm_error_message()), dm_error_hint_text());
    dm_buf_free(&many);
    /* dm_cfg_load_file lists the errors of its file too */
    dm_error_clear();
    CHECK(dm_cfg_load_file(&m, write_cfg("synth: {\n  user = 5;\n  zipf = -3.0;\n};\nfoo: { a = 1; };\n")) == DM_ECONFIG && strstr(dm_error_message(), "3 errors in the configuration:"),
          "a file's errors: %s", dm_error_message());
    dm_cfg_free(&m);
}

/* one key of a stored config whose other keys this version does not know */
static void test_stored_key(void)
{
    char v[32];
    CHECK(dm_cfg_text_str("lm: { dtype = \"bf16\"; };\nsplit: { protocol = \"temporal\"; };\n", "split.protocol", v, sizeof v) == DM_OK &&
              !strcmp(v, "temporal"),
          "split.protocol of an old config: %s", v);
    CHECK(dm_cfg_text_str("split: { };\n", "split.protocol", v, sizeof v) == DM_EINPUT, "an absent key is an error");
    CHECK(dm_cfg_text_str("split: { protocol = ; };\n", "split.protocol", v, sizeof v) == DM_EINPUT &&
              strstr(dm_error_message(), "line 1"),
          "a broken text names the line: %s", dm_error_message());
}

/* canonical round trip: serialise, reload, serialise again -> identical text and hash */
static void test_round_trip(const dm_cfg *c)
{
    dm_buf a = {0}, b = {0};
    CHECK(dm_cfg_serialize(c, NULL, &a) == DM_OK, "serialize");
    dm_cfg r;
    dm_cfg_init(&r);
    CHECK(dm_cfg_load_string(&r, a.data, "resolved") == DM_OK, "reload: %s", dm_error_message());
    dm_cfg_serialize(&r, NULL, &b);
    CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len), "round trip is exact");
    char h1[65], h2[65], h3[65];
    dm_cfg_hash(c, NULL, h1);
    dm_cfg_hash(&r, NULL, h2);
    CHECK(!strcmp(h1, h2), "hash of the reloaded config");
    const char *groups[] = {"synth", NULL};
    dm_cfg_hash(c, groups, h3);
    dm_cfg_set(&r, "run.verbose=2");
    dm_cfg_hash(&r, groups, h2);
    CHECK(!strcmp(h2, h3), "a change outside the hashed groups keeps the group hash");
    dm_cfg_set(&r, "synth.zipf=0.5");
    dm_cfg_hash(&r, groups, h2);
    CHECK(strcmp(h2, h3) != 0, "a change inside changes it");
    CHECK(strstr(a.data, "zipf = 1.0;") != NULL, "floats keep a decimal point: shortest round-trip text");
    dm_buf_free(&a);
    dm_buf_free(&b);
    dm_cfg_free(&r);
}

/* the committed reference config is what the key table generates */
static void test_reference(void)
{
    dm_buf ref = {0};
    dm_cfg_reference(&ref);
    char *committed = NULL;
    size_t n = 0;
    int rc = dm_read_file("configs/reference.cfg", &committed, &n);
    CHECK(rc == DM_OK && n == ref.len && !memcmp(committed, ref.data, n),
          "configs/reference.cfg is stale: run `make reference-config` (%zu vs %zu bytes)", n, ref.len);
    dm_cfg d2;
    dm_cfg_init(&d2);
    CHECK(rc == DM_OK && dm_cfg_load_string(&d2, committed, "reference.cfg") == DM_OK, "the reference config loads: %s",
          dm_error_message());
    size_t nk;
    const dm_key *keys = dm_keys(&nk);
    int documented = 1;
    for (size_t k = 0; k < nk; k++) documented &= strlen(keys[k].doc) > 8;
    CHECK(documented, "every key has documentation");
    free(committed);
    dm_buf_free(&ref);
    dm_cfg_free(&d2);
}

int main(void)
{
    dm_cfg c;
    CHECK(dm_cfg_init(&c) == DM_OK, "%s", dm_error_message());
    test_load(&c);
    test_errors();
    test_error_list();
    test_stored_key();
    test_round_trip(&c);
    test_reference();
    dm_cfg_free(&c);
    return tap_done("test_config");
}
