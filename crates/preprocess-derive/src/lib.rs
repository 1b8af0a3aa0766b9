//! `#[derive(FromRecordBatch)]` for `inferkit-preprocess`: a struct with named fields becomes
//! buildable from the rows of an arrow `RecordBatch`.
//!
//! Each field reads the column of its name (or `#[column(name = "…")]`); its type is a
//! `FromColumn` type (`i8`…`i64`, `u8`…`u64`, `f32`, `f64`, `bool`, `String`) or an
//! `Option` of one (nullable). The generated code looks every column up and checks its type
//! once per batch — errors name the column, the expected and the found type — then builds
//! the rows from the typed arrays; when no required column has a null, values are read with
//! no validity test (as a hand-written loop would), otherwise a null in a non-`Option`
//! field is an error naming row and column. The code refers to `::inferkit_preprocess`; put
//! `#[from_record_batch(crate = "inferkit::preprocess")]` on the struct to use the path
//! through the `inferkit` crate instead.
//!
//! ```ignore
//! #[derive(inferkit_preprocess_derive::FromRecordBatch)]
//! struct Row {
//!     id: i64,
//!     #[column(name = "score")]
//!     value: Option<f64>,
//!     text: String,
//! }
//! let rows: Vec<Row> = Row::from_batch(&batch, 0, "file.parquet")?;
//! ```

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{
    Data, DeriveInput, Fields, GenericArgument, LitStr, PathArguments, Type, parse_macro_input,
};

/// Derives `inferkit_preprocess::table::FromRecordBatch`; see the crate docs.
#[proc_macro_derive(FromRecordBatch, attributes(column, from_record_batch))]
pub fn derive_from_record_batch(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// `T` of an `Option<T>`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    let mut krate: syn::Path = syn::parse_quote!(::inferkit_preprocess);
    for attr in &input.attrs {
        if attr.path().is_ident("from_record_batch") {
            attr.parse_nested_meta(|m| {
                if m.path.is_ident("crate") {
                    let s: LitStr = m.value()?.parse()?;
                    krate = s.parse()?;
                    Ok(())
                } else {
                    Err(m.error("expected `crate = \"path\"`"))
                }
            })?;
        }
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "FromRecordBatch is derived for structs with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            name,
            "FromRecordBatch is derived for structs with named fields",
        ));
    };
    let mut lookups = Vec::new();
    let mut inits = Vec::new();
    let mut fast = Vec::new();
    let mut dense = Vec::new();
    for (i, f) in fields.named.iter().enumerate() {
        let ident = f.ident.as_ref().expect("named field");
        let mut column = ident.to_string();
        for attr in &f.attrs {
            if attr.path().is_ident("column") {
                attr.parse_nested_meta(|m| {
                    if m.path.is_ident("name") {
                        column = m.value()?.parse::<LitStr>()?.value();
                        Ok(())
                    } else {
                        Err(m.error("expected `name = \"column\"`"))
                    }
                })?;
            }
        }
        let var = format_ident!("__col{}", i);
        let (inner, optional) = match option_inner(&f.ty) {
            Some(t) => (t, true),
            None => (&f.ty, false),
        };
        lookups.push(quote! {
            let #var = #krate::table::__derive::column::<#inner>(batch, #column, file)?;
        });
        if optional {
            inits.push(quote! { #ident: <#inner as #krate::table::FromColumn>::value(&#var, __i) });
            fast.push(quote! { #ident: <#inner as #krate::table::FromColumn>::value(&#var, __i) });
        } else {
            inits.push(quote! { #ident: #krate::table::__derive::required::<#inner>(&#var, __i, first_row, #column, file)? });
            fast.push(quote! { #ident: <#inner as #krate::table::FromColumn>::get(&#var, __i) });
            dense.push(quote! { <#inner as #krate::table::FromColumn>::null_count(&#var) == 0 });
        }
    }
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_g #krate::table::FromRecordBatch for #name #ty_g #where_g {
            fn from_batch(
                batch: &#krate::table::RecordBatch,
                first_row: usize,
                file: &str,
            ) -> #krate::Result<::std::vec::Vec<Self>> {
                #(#lookups)*
                let __n = batch.num_rows();
                // no nulls where a value is required: no validity test per value
                if true #(&& #dense)* {
                    return ::std::result::Result::Ok(
                        (0..__n).map(|__i| Self { #(#fast,)* }).collect(),
                    );
                }
                let mut __out = ::std::vec::Vec::with_capacity(__n);
                for __i in 0..__n {
                    __out.push(Self { #(#inits,)* });
                }
                ::std::result::Result::Ok(__out)
            }
        }
    })
}
