/* Scaffold: replaced by the operator command implementation. */
#include "cli/cli-int.h"

int
bp_cli__cmd_operator(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    bp_cli__error("operator commands are not built yet");
    return BP_CLI_EXIT_FAIL;
}
