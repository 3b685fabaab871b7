//! The conformance suite: one set of black-box HTTP tests, run against every storage
//! backend. Each test is `pub async fn name(backend: Backend)` in a module below.

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod admin;
mod conventions;
mod cookies;
mod forward_auth;
mod hostile;
mod limits;
mod login;
mod logout;
mod prefix;
mod refresh;
mod restart;
mod sessions;
mod signing_keys;
mod token_attacks;
mod tutorial;

/// Instantiate every listed test once per backend: SQLite always, PostgreSQL when
/// `TOKENGATE_TEST_PG_URL` names a server (else they say why they skip).
macro_rules! conformance {
    ($($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        mod sqlite {
            $(mod $module {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$module::$name(crate::common::Backend::Sqlite).await;
                })*
            })*
        }
        mod postgres {
            $(mod $module {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if crate::common::pg_url().is_none() {
                        crate::common::say_pg_skipped();
                        return;
                    }
                    crate::$module::$name(crate::common::Backend::Postgres).await;
                })*
            })*
        }
    };
}

conformance! {
    accounts: [
        register_returns_user_read_without_hash,
        register_refuses_taken_username_and_email,
        register_validation_lists_every_field,
        register_counts_password_characters_not_bytes,
        register_never_grants_roles_from_the_body,
        password_change_keeps_current_session_and_revokes_others,
        password_change_refuses_wrong_current_and_weak_new,
        a_taken_name_costs_no_hash,
        a_full_hash_queue_answers_503_at_once,
        a_login_in_flight_during_a_password_change_opens_no_session,
        a_password_change_that_lost_a_race_writes_nothing,
        a_password_change_loses_to_an_operator_reset,
        a_password_change_from_a_revoked_session_writes_nothing,
        the_most_common_passwords_are_refused_with_a_reason,
    ],
    login: [
        login_accepts_oauth2_form_and_json,
        login_unknown_user_and_wrong_password_look_the_same,
        login_validation_errors,
        access_token_has_the_contract_shape,
        me_returns_the_caller,
        login_accepts_multipart_form_data,
        json_sent_as_a_form_is_a_415_that_says_so,
        token_endpoint_takes_the_refresh_grant,
        token_endpoint_errors_carry_the_oauth2_error,
    ],
    tutorial: [
        the_tutorials_urls_are_served_and_documented,
        the_tutorials_urls_follow_the_path_prefix,
        access_tokens_name_the_user,
        users_log_in_with_their_email_too,
    ],
    prefix: [
        the_main_flow_works_under_a_path_prefix,
        nothing_answers_outside_the_path_prefix,
    ],
    token_attacks: [
        missing_or_non_bearer_credentials_are_not_authenticated,
        resigned_genuine_claims_are_accepted,
        alg_none_is_refused,
        other_algorithm_with_the_same_secret_is_refused,
        guessed_key_is_refused,
        unknown_or_missing_kid_is_refused,
        wrong_issuer_or_audience_is_refused,
        wrong_token_type_is_refused,
        missing_claims_are_refused,
        mistyped_claims_are_refused,
        tampered_payload_is_refused,
        expired_token_is_refused,
        not_yet_valid_token_is_refused,
        garbage_tokens_are_refused,
        token_in_query_string_is_ignored,
        previous_secret_still_verifies,
        crit_header_is_refused,
        refusals_say_why_in_the_challenge,
    ],
    refresh: [
        refresh_rotates_and_old_token_dies,
        refresh_reuse_revokes_the_whole_session,
        parallel_refresh_issues_exactly_one_pair,
        reuse_grace_gives_parallel_refreshes_one_successor,
        reuse_after_the_grace_revokes_the_session,
        reuse_grace_covers_only_the_token_spent_last,
        reuse_grace_never_revives_a_revoked_session,
        refresh_token_expires,
        refresh_refuses_malformed_and_unknown_tokens,
        refresh_validation_errors,
        access_token_expires_and_refresh_renews_it,
        sessions_end_at_their_absolute_lifetime,
        the_session_lifetime_is_configurable,
    ],
    logout: [
        logout_kills_the_session_not_only_the_token,
        logout_takes_no_body_or_a_json_null,
        logout_leaves_other_sessions_alive,
        logout_with_refresh_token_of_another_session,
        logout_all_kills_every_session,
        logout_requires_a_valid_token,
        a_revocation_on_another_instance_holds_within_a_second,
        a_logout_that_cannot_be_logged_is_a_503_and_changes_nothing,
    ],
    sessions: [
        sessions_list_marks_current_and_hides_dead_ones,
        sessions_last_used_moves_on_refresh,
        revoking_a_session_kills_it_at_once,
        another_users_session_is_not_found_and_stays_alive,
        sessions_show_a_given_device_name_or_one_read_from_the_user_agent,
        a_device_name_over_64_characters_or_with_control_characters_is_a_422,
        session_ip_keeps_the_address_its_network_or_nothing,
    ],
    admin: [
        non_admin_gets_403_and_anonymous_401,
        admin_lists_users_with_bounded_paging,
        role_change_applies_at_next_refresh,
        patch_validates_its_body,
        deactivation_kills_every_token_and_reactivation_revives_none,
        deleting_a_user_kills_their_tokens,
        the_last_admin_cannot_leave_the_server_without_one,
        a_login_racing_a_deactivation_opens_no_session,
        a_login_racing_a_deletion_is_refused_not_a_500,
        two_admins_demoting_each_other_at_once_leave_one,
    ],
    limits: [
        login_is_limited_per_ip,
        limited_username_refuses_even_the_right_password_on_every_route,
        a_locked_account_is_not_told_apart_through_its_email,
        limit_lifts_when_the_window_passes,
        refresh_is_limited_per_ip,
        forged_forwarded_for_is_ignored_by_default,
        session_ip_comes_from_trusted_proxies_only,
        password_change_guesses_spend_the_sessions_own_budget,
        one_network_guessing_locks_out_only_that_network,
        only_failed_logins_count,
        oversized_passwords_spend_no_username_budget,
        a_known_device_is_not_locked_out_by_strangers,
        register_is_limited_per_ip,
        ipv6_clients_share_a_budget_per_64,
    ],
    forward_auth: [
        verify_answers_identity_headers,
        verify_refuses_missing_invalid_and_revoked,
        verify_checks_a_required_role,
        verify_applies_csrf_to_the_method_the_proxy_names,
    ],
    cookies: [
        cookie_login_sets_the_three_cookies_and_no_token_in_the_body,
        protected_routes_accept_the_access_cookie,
        unsafe_cookie_requests_need_the_csrf_header,
        cookie_refresh_rotates_and_reuse_kills_the_session,
        cookie_refresh_in_the_reuse_grace_repeats_the_successor,
        cookie_logout_clears_cookies_and_kills_the_session,
        cookie_logout_after_access_expiry_uses_the_refresh_cookie,
        insecure_cookies_only_when_configured,
        cors_allows_configured_origins_only,
        account_page_is_served_with_strict_security_headers,
        a_cookie_sent_twice_is_refused,
        csrf_token_is_bound_to_its_session,
        cross_site_cookie_login_is_refused,
    ],
    signing_keys: [
        asymmetric_tokens_verify_through_the_jwks,
        rotation_keeps_old_tokens_valid_then_retires_the_key,
        algorithm_confusion_is_refused,
        forged_kid_jku_and_jwk_headers_are_refused,
        hs256_publishes_no_key_and_discovery_describes_the_server,
        instances_on_one_database_share_keys_and_rotations,
        switching_from_hs256_accepts_previous_secret_tokens,
        revoking_a_retired_key_ends_it_at_once,
        discovery_urls_never_come_from_the_host_header,
    ],
    restart: [
        state_survives_a_restart,
    ],
    conventions: [
        unknown_route_is_json_404,
        wrong_method_is_json_405,
        oversized_body_is_413,
        malformed_json_is_422,
        wrong_content_type_is_415,
        health_and_readiness,
        no_client_input_causes_a_5xx,
        slow_and_idle_clients_cannot_hold_connections,
        a_slow_body_gets_408,
        every_response_carries_a_request_id,
        metrics_answer_only_to_their_token,
    ],
    hostile: [
        one_megabyte_bodies_and_chunked_bodies_are_413_and_the_connection_lives,
        deeply_nested_json_is_refused_without_a_crash,
        invalid_utf8_lone_surrogates_and_control_characters_in_every_string_field,
        huge_and_numerous_headers_are_4xx,
        sql_and_like_wildcards_are_plain_text,
        compressed_bodies_are_not_decompressed,
        five_hundred_slowloris_clients_are_cut_off_while_others_are_served,
    ],
}
