# Integration tests of issue 6 (security): TLS handshakes and garbage, the ACL,
# server-held PINs, PIN throttling, the plaintext refusal, and secrets kept out of
# logs, against a real p11netd and SoftHSM (shell scripts in security/).
foreach(t test_tls test_acl test_throttle test_insecure test_secrets)
  add_test(NAME integration.security.${t} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/security/${t}.sh)
  set_tests_properties(integration.security.${t} PROPERTIES LABELS integration TIMEOUT ${P11N_TEST_TIMEOUT}
    ENVIRONMENT "P11NET_SOURCE_DIR=${CMAKE_SOURCE_DIR};P11NETD=$<TARGET_FILE:p11netd>;P11NET_CLI=$<TARGET_FILE:p11net>")
endforeach()

# libp11net over TLS: one handle shared by threads, large replies, handshake errors.
p11n_integration_test(test_tls_client p11net_static)
