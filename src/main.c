/* blnkproxy: one binary, many commands (DESIGN §7). */
#include <jansson.h>

#include "cli/cli.h"
#include "lib/alloc.h"

int
main(int argc, char **argv)
{
    json_set_alloc_funcs(bp_malloc, bp_free);
    return bp_cli_main(argc, argv);
}
