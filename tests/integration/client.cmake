# Integration tests of issue 3 (client): the p11net command line against a real
# p11netd (shell scripts; tests/integration/client/lib.sh starts the server).
foreach(t test_cli test_run test_run_lost)
  add_test(NAME integration.client.${t} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/client/${t}.sh)
  set_tests_properties(integration.client.${t} PROPERTIES LABELS integration TIMEOUT ${P11N_TEST_TIMEOUT}
    ENVIRONMENT "P11NET_SOURCE_DIR=${CMAKE_SOURCE_DIR};P11NETD=$<TARGET_FILE:p11netd>;P11NET_CLI=$<TARGET_FILE:p11net>")
endforeach()
