/* IP addresses and networks (lib/ipnet.h): what trusted_proxies and X-Forwarded-For parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/ipnet.h"

static struct bp_ip
ip(const char *text)
{
    struct bp_ip out;

    assert_true(bp_ip_parse(text, strlen(text), &out));
    return out;
}

static bool
in(const char *net, const char *addr)
{
    struct bp_ipnet n;
    struct bp_ip a = ip(addr);

    assert_true(bp_ipnet_parse(net, strlen(net), &n));
    return bp_ipnet_contains(&n, &a);
}

static void
test_addresses(void **state)
{
    static const char *const bad[] = {"",           "1.2.3",    "1.2.3.4.5", "256.1.1.1",
                                      "1.2.3.4:80", "[::1]",    "::1%lo",    "fe80::1%eth0",
                                      "unknown",    " 1.2.3.4", "1.2.3.4 ",  "::g"};
    char text[BP_IP_TEXT_MAX];
    struct bp_ip a;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(bp_ip_parse(bad[i], strlen(bad[i]), &a));
    }
    /* Length-carrying: the text need not end where the address does. */
    assert_true(bp_ip_parse("10.0.0.1, 10.0.0.2", 8, &a));
    bp_ip_format(&a, text);
    assert_string_equal(text, "10.0.0.1");
    a = ip("2001:DB8:0:0::7");
    bp_ip_format(&a, text);
    assert_string_equal(text, "2001:db8::7");
    /* An IPv4-mapped address is the IPv4 address. */
    a = ip("::ffff:192.0.2.1");
    bp_ip_format(&a, text);
    assert_string_equal(text, "192.0.2.1");
}

static void
test_networks(void **state)
{
    static const char *const bad[] = {"10.0.0.1/8",     "10.0.0.0/33", "10.0.0.0/",
                                      "10.0.0.0/8x",    "10.0.0.0/-1", "::1/129",
                                      "2001:db8::1/32", "/8",          "10.0.0.0/0008"};
    struct bp_ipnet n;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(bp_ipnet_parse(bad[i], strlen(bad[i]), &n));
    }
    assert_true(in("10.0.0.0/8", "10.255.1.2"));
    assert_false(in("10.0.0.0/8", "11.0.0.0"));
    assert_true(in("192.0.2.7", "192.0.2.7"));
    assert_false(in("192.0.2.7", "192.0.2.8"));
    assert_true(in("172.16.0.0/12", "172.31.255.255"));
    assert_false(in("172.16.0.0/12", "172.32.0.0"));
    assert_true(in("0.0.0.0/0", "203.0.113.9"));
    assert_false(in("0.0.0.0/0", "2001:db8::1")); /* every IPv4 address, and only those */
    assert_true(in("::/0", "203.0.113.9"));
    assert_true(in("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(in("2001:db8::/32", "2001:db9::1"));
    assert_true(in("::1", "::1"));
    assert_false(in("::1", "127.0.0.1"));
    assert_true(in("2001:db8:0:2::/63", "2001:db8:0:3:ffff::1")); /* a prefix not on a byte */
    assert_false(in("2001:db8:0:2::/63", "2001:db8:0:1::1"));
    assert_false(bp_ipnet_parse("2001:db8:0:1::/63", 17, &n)); /* its host bit is set */
}

static void
test_lists(void **state)
{
    struct bp_ipnet *nets = NULL;
    size_t n = 99;
    char bad[80] = "";
    struct bp_ip a = ip("10.1.2.3");
    struct bp_ip b = ip("::1");
    struct bp_ip c = ip("192.0.2.8");

    (void)state;
    assert_int_equal(bp_ipnet_list_parse("", 4, &nets, &n, bad, sizeof(bad)), BP_OK);
    assert_null(nets);
    assert_int_equal(n, 0);
    assert_int_equal(bp_ipnet_list_parse(" 10.0.0.0/8 ,::1,192.0.2.7", 4, &nets, &n, bad, sizeof(bad)),
                     BP_OK);
    assert_int_equal(n, 3);
    assert_true(bp_ipnet_list_contains(nets, n, &a));
    assert_true(bp_ipnet_list_contains(nets, n, &b));
    assert_false(bp_ipnet_list_contains(nets, n, &c));
    bp_free(nets);

    assert_int_equal(bp_ipnet_list_parse("10.0.0.0/8,,::1", 4, &nets, &n, bad, sizeof(bad)), BP_ERR_INVALID);
    assert_string_equal(bad, "''");
    assert_int_equal(bp_ipnet_list_parse("10.0.0.0/8,example.com", 4, &nets, &n, bad, sizeof(bad)),
                     BP_ERR_INVALID);
    assert_string_equal(bad, "'example.com'");
    assert_int_equal(bp_ipnet_list_parse("10.0.0.0/8,", 4, &nets, &n, NULL, 0), BP_ERR_INVALID);
    assert_int_equal(bp_ipnet_list_parse("1.1.1.1,2.2.2.2,3.3.3.3", 2, &nets, &n, bad, sizeof(bad)),
                     BP_ERR_INVALID);
    assert_null(nets);
}

/* A per-client limit counts an IPv6 /64 as one client, an IPv4 address as itself. */
static void
test_peer_key(void **state)
{
    struct bp_ip a = ip("2001:db8:1:2:aaaa::1");
    struct bp_ip b = ip("2001:db8:1:2:bbbb::9");
    struct bp_ip c = ip("2001:db8:1:3::1");
    struct bp_ip v4 = ip("192.0.2.7");
    struct bp_ip ka;
    struct bp_ip kb;
    struct bp_ip kc;
    struct bp_ip k4;
    char text[BP_IP_TEXT_MAX];

    (void)state;
    bp_ip_peer_key(&a, &ka);
    bp_ip_peer_key(&b, &kb);
    bp_ip_peer_key(&c, &kc);
    bp_ip_peer_key(&v4, &k4);
    assert_memory_equal(&ka, &kb, sizeof(ka));
    assert_memory_not_equal(&ka, &kc, sizeof(ka));
    bp_ip_format(&ka, text);
    assert_string_equal(text, "2001:db8:1:2::");
    bp_ip_format(&k4, text);
    assert_string_equal(text, "192.0.2.7");
}

static void
test_sockaddr(void **state)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    struct sockaddr other = {.sa_family = AF_UNIX};
    struct bp_ip a;
    char text[BP_IP_TEXT_MAX];

    (void)state;
    inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
    inet_pton(AF_INET6, "::1", &v6.sin6_addr);
    assert_true(bp_ip_from_sockaddr(&v4, &a));
    bp_ip_format(&a, text);
    assert_string_equal(text, "127.0.0.1");
    assert_true(in("127.0.0.0/8", text));
    assert_true(bp_ip_from_sockaddr(&v6, &a));
    bp_ip_format(&a, text);
    assert_string_equal(text, "::1");
    assert_false(bp_ip_from_sockaddr(&other, &a));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_networks),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_peer_key),
        cmocka_unit_test(test_sockaddr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
