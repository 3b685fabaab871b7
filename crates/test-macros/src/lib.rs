//! `#[per_backend]` on `async fn name(backend: Backend)`: the function stays as written,
//! and a module of the same name holds one `#[tokio::test]` per storage backend,
//! `name::sqlite` and `name::postgres`. The PostgreSQL test says why it skips when
//! `TOKENGATE_TEST_PG_URL` is unset (and fails under CI: `common::say_pg_skipped`).
//! A test is registered where it is written: there is no list to forget it in.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemFn, parse_macro_input};

#[proc_macro_attribute]
pub fn per_backend(args: TokenStream, item: TokenStream) -> TokenStream {
    if !args.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[per_backend] takes no arguments")
            .to_compile_error()
            .into();
    }
    let test = parse_macro_input!(item as ItemFn);
    if test.sig.asyncness.is_none() || test.sig.inputs.len() != 1 {
        return syn::Error::new_spanned(&test.sig, "#[per_backend] goes on `async fn name(backend: Backend)`")
            .to_compile_error()
            .into();
    }
    let name = &test.sig.ident;
    quote! {
        #test

        #[allow(non_snake_case)]
        mod #name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::#name(crate::common::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if crate::common::pg_url().is_none() {
                    crate::common::say_pg_skipped();
                    return;
                }
                super::#name(crate::common::Backend::Postgres).await;
            }
        }
    }
    .into()
}
