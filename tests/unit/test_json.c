/* test_json.c: the JSON / Python-literal parser: values, escapes to UTF-8, exact 64-bit integers,
 * Python-only syntax refused in strict mode, and error offsets. */
#include "../../src/core/json.h"
#include "tap.h"

#include <string.h>

static dm_jdoc doc;

static const dm_json *parse(const char *s, int py, dm_jerr *e)
{
    dm_json *r = NULL;
    dm_jdoc_reset(&doc);
    return dm_json_parse(&doc, s, strlen(s), py, &r, e) == 0 ? r : NULL;
}

int main(void)
{
    dm_jerr e;
    const dm_json *r = parse("{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\\n\"], \"b\": {\"c\": 9007199254740993}}", 0, &e);
    CHECK(r && r->type == DM_JOBJ && r->len == 2, "object");
    const dm_json *a = dm_json_get(r, "a");
    double d;
    int64_t i;
    CHECK(a && a->len == 5 && !dm_json_double(dm_json_at(a, 1), &d) && d == -2500.0, "numbers");
    CHECK(dm_json_at(a, 2)->type == DM_JBOOL && dm_json_at(a, 2)->boolean && dm_json_at(a, 3)->type == DM_JNULL, "literals");
    CHECK(!strcmp(dm_json_at(a, 4)->str, "x\xc3\xa9\xf0\x9f\x98\x80\n"), "escapes and surrogate pairs to UTF-8");
    CHECK(!dm_json_int(dm_json_get(dm_json_get(r, "b"), "c"), &i) && i == 9007199254740993LL, "64-bit integers exact");
    r = parse("{'k': u'it\\'s', \"q\": (1, 2,), 'n': None, 't': True, 'x': '\\xe9\\U0001F600',}", 1, &e);
    CHECK(r && !strcmp(dm_json_get(r, "k")->str, "it's"), "python quotes and \\'");
    CHECK(dm_json_get(r, "q")->type == DM_JARR && dm_json_get(r, "q")->len == 2, "tuple with trailing comma");
    CHECK(!strcmp(dm_json_get(r, "x")->str, "\xc3\xa9\xf0\x9f\x98\x80"), "\\x and \\U escapes");
    CHECK(dm_json_get(r, "n")->type == DM_JNULL && dm_json_get(r, "t")->boolean, "None/True");
    CHECK(parse("{'a': 1}", 0, &e) == NULL && e.offset == 1 && strstr(e.what, "expected a string key"), "single quotes refused in JSON: %s", e.what);
    CHECK(parse("[1, 2,]", 0, &e) == NULL && strstr(e.what, "trailing comma"), "trailing comma refused in JSON");
    CHECK(parse("{\"a\": 1 \"b\": 2}", 0, &e) == NULL && e.offset == 8 && strstr(e.what, "expected ',' or '}'"),
          "error offset %zu: %s", e.offset, e.what);
    CHECK(parse("\"abc", 0, &e) == NULL && strstr(e.what, "unterminated string"), "unterminated");
    CHECK(parse("[1] x", 0, &e) == NULL && e.offset == 4, "trailing garbage at %zu", e.offset);
    CHECK(parse("\"a\\qb\"", 0, &e) == NULL && strstr(e.what, "bad escape"), "bad escape");
    char q[64];
    dm_json_quote(q, sizeof q, "a\"b\n\x01", 5);
    CHECK(!strcmp(q, "\"a\\\"b\\n\\u0001\""), "quote: %s", q);
    dm_jdoc_free(&doc);
    return tap_done("test_json");
}
