/* blnkproxy: one binary, many commands (DESIGN §7). */
#include <jansson.h>

#include "cli/cli.h"
#include "lib/secret.h"

int
main(int argc, char **argv)
{
    /* JSON passes through passwords, secrets and created keys (admin API bodies, CLI output):
     * none is left in freed memory. */
    json_set_alloc_funcs(bp_malloc_wiped, bp_free_wiped);
    return bp_cli_main(argc, argv);
}
