# Unit tests of issue 6 (security): the ACL and PIN throttling (src/server/access.c).
p11n_unit_test(test_access p11n_server)
