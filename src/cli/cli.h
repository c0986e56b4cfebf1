#ifndef BP_CLI_CLI_H
#define BP_CLI_CLI_H

/* The blnkproxy command line (DESIGN §7): parses argv, runs one command and returns the process
 * exit code (0 ok, 1 failure, 2 usage or validation error, 3 unknown id). */
int bp_cli_main(int argc, char **argv);

#endif
