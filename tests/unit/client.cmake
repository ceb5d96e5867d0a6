# Unit tests of issue 3 (client): libp11net and the command line's parts.
# test_client_fake.c is a fake p11netd shared by the two test_client* programs.
p11n_unit_test(test_csv p11n_cli)
p11n_unit_test(test_hist p11n_cli)
p11n_unit_test(test_client p11net_static Threads::Threads)
target_sources(test_client PRIVATE test_client_fake.c)
p11n_unit_test(test_client_run p11n_cli Threads::Threads)
target_sources(test_client_run PRIVATE test_client_fake.c)
