/* test_config.c: defaults, files, --set, the error messages (unknown key with the closest one,
 * wrong type and range with file:line), canonical serialisation round trip and hashing, and the
 * committed configs/reference.cfg being exactly what the key table generates. */
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

int main(void)
{
    dm_cfg c;
    CHECK(dm_cfg_init(&c) == DM_OK, "%s", dm_error_message());
    CHECK(dm_cfg_int(&c, "synth.users") == 2000 && dm_cfg_float(&c, "synth.zipf") == 0.8, "defaults from the key table");
    CHECK(!strcmp(dm_cfg_str(&c, "data.format"), "synth") && dm_cfg_bool(&c, "modal.zero_is_missing") == 1, "string/bool defaults");
    CHECK(dm_cfg_len(&c, "data.price_buckets") == 4 && dm_cfg_float_at(&c, "data.price_buckets", 3) == 100, "list default");

    /* a file with nested groups, a list and an int given for a float */
    CHECK(dm_cfg_load_file(&c, write_cfg("synth: { users = 77; zipf = 1; };\n"
                                         "data: { price_buckets = (5, 7.5); format = \"tsv\"; };\n"
                                         "modal: { visual: { path = \"v.npy\"; shape = [3, 4]; }; };\n")) == DM_OK,
          "%s", dm_error_message());
    CHECK(dm_cfg_int(&c, "synth.users") == 77 && dm_cfg_float(&c, "synth.zipf") == 1.0, "file values");
    CHECK(dm_cfg_len(&c, "data.price_buckets") == 2 && dm_cfg_float_at(&c, "data.price_buckets", 1) == 7.5, "file list");
    CHECK(dm_cfg_int_at(&c, "modal.visual.shape", 1) == 4 && !strcmp(dm_cfg_str(&c, "modal.visual.path"), "v.npy"), "3-level keys");
    char where[256];
    CHECK(strstr(dm_cfg_where(&c, "synth.users", where, sizeof where), "test_config.cfg:1") != NULL, "origin: %s", where);

    /* --set overrides, with its own syntax */
    CHECK(dm_cfg_set(&c, "synth.users=12") == DM_OK && dm_cfg_int(&c, "synth.users") == 12, "--set int");
    CHECK(dm_cfg_set(&c, "eval.ks=[1, 3]") == DM_OK || dm_key_index("eval.ks") < 0, "--set list");
    CHECK(dm_cfg_set(&c, "data.price_buckets=1,2,3") == DM_OK && dm_cfg_len(&c, "data.price_buckets") == 3, "--set list without brackets");
    CHECK(dm_cfg_set(&c, "run.force=yes") == DM_OK && dm_cfg_bool(&c, "run.force") == 1, "--set bool");
    CHECK(dm_cfg_set(&c, "run.dir=\"a b\"") == DM_OK && !strcmp(dm_cfg_str(&c, "run.dir"), "a b"), "--set quoted string");

    /* errors */
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

    /* canonical round trip: serialise, reload, serialise again -> identical text and hash */
    dm_buf a = {0}, b = {0};
    CHECK(dm_cfg_serialize(&c, NULL, &a) == DM_OK, "serialize");
    dm_cfg r;
    dm_cfg_init(&r);
    CHECK(dm_cfg_load_string(&r, a.data, "resolved") == DM_OK, "reload: %s", dm_error_message());
    dm_cfg_serialize(&r, NULL, &b);
    CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len), "round trip is exact");
    char h1[65], h2[65], h3[65];
    dm_cfg_hash(&c, NULL, h1);
    dm_cfg_hash(&r, NULL, h2);
    CHECK(!strcmp(h1, h2), "hash of the reloaded config");
    const char *groups[] = {"synth", NULL};
    dm_cfg_hash(&c, groups, h3);
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

    /* the committed reference config is what the key table generates */
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
    dm_cfg_free(&c);
    return tap_done("test_config");
}
