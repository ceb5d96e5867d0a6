# Unit tests of the server's PKCS#11 side; they run against real SoftHSM tokens
# (made by scripts/mktokens.sh in a temporary directory).
set(P11N_SERVER_UNIT_TESTS test_hsm test_pin test_op_sign test_op_crypt test_op_list)
foreach(t ${P11N_SERVER_UNIT_TESTS})
  p11n_unit_test(${t} p11n_server)
  # SoftHSM leaks inside itself; see tests/lsan.supp.
  set_property(TEST unit.${t} APPEND PROPERTY ENVIRONMENT
    "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp"
    "ASAN_OPTIONS=fast_unwind_on_malloc=0")
endforeach()
