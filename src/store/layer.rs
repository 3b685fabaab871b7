//! Layers over a store (the session cache, the meter): a layer takes over the roles it
//! changes and passes the others through. Each data role is declared once with
//! [`store_role!`], which writes the trait and its pass-through: a layer that
//! implements [`Over<R>`] for a role's marker `R` gets that role forwarded to its
//! inner store, through its [`Over::around`] hook (the meter times each call there).

use futures_util::future::BoxFuture;

use super::error::StoreError;

/// A layer over `inner()` that passes role `R` through.
pub trait Over<R>: Send + Sync + 'static {
    /// What the calls are passed to (a layer's inner store, usually `dyn Store`).
    type Inner: ?Sized + Sync;

    fn inner(&self) -> &Self::Inner;

    /// Runs each passed-through call of role `R`, named `op`; by default, just the call.
    fn around<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        let _ = op;
        call
    }
}

/// Declares a store role: the trait (every method async, returning `Result<_,
/// StoreError>`), its marker type, and its pass-through for any layer that is
/// [`Over`] the marker.
macro_rules! store_role {
    (
        $(#[$doc:meta])*
        pub trait $role:ident (marker $marker:ident) {
            $(
                $(#[$mdoc:meta])*
                async fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> Result<$ok:ty, StoreError>;
            )*
        }
    ) => {
        $(#[$doc])*
        #[async_trait::async_trait]
        pub trait $role: Send + Sync + 'static {
            $(
                $(#[$mdoc])*
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ok, StoreError>;
            )*
        }

        #[doc = concat!("Marks a layer that passes [`", stringify!($role), "`] through.")]
        pub struct $marker;

        #[async_trait::async_trait]
        impl<L> $role for L
        where
            L: $crate::store::layer::Over<$marker>,
            <L as $crate::store::layer::Over<$marker>>::Inner: $role,
        {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ok, StoreError> {
                    let inner = self.inner();
                    self.around(stringify!($name), Box::pin(async move { inner.$name($($arg),*).await }))
                        .await
                }
            )*
        }
    };
}
pub(crate) use store_role;
