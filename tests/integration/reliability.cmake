# Reliability (issue 5): HSM faults through tests/faultmod, hostile and slow clients.
p11n_integration_test(test_faults)
set_property(TEST integration.test_faults APPEND PROPERTY ENVIRONMENT "P11NET_FAULTMOD=$<TARGET_FILE:p11n_faultmod>")
add_dependencies(test_faults p11n_faultmod)
p11n_integration_test(test_hostile)
