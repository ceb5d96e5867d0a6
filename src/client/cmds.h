/* The subcommands of the p11net command line. Each takes argv starting at the
 * subcommand's name and returns the exit status (P11N_EXIT_*). */
#ifndef P11N_CLIENT_CMDS_H
#define P11N_CLIENT_CMDS_H

int p11n_cmd_ping(int argc, char **argv);
int p11n_cmd_list(int argc, char **argv);
int p11n_cmd_sign(int argc, char **argv);
int p11n_cmd_verify(int argc, char **argv);
int p11n_cmd_encrypt(int argc, char **argv);
int p11n_cmd_decrypt(int argc, char **argv);
int p11n_cmd_run(int argc, char **argv);   /* run.c */
int p11n_cmd_bench(int argc, char **argv); /* bench.c */

#endif
