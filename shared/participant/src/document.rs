//! The participant endpoints' OpenAPI operations, built from the service's
//! [`TpcWork`] types, for the service's `/openapi.json`.

use api::{Already, FinishAnswer, FinishOutcome, HeldLock, NoFields, PreparedList, PreparedTransaction, Vote};

use crate::TpcWork;

/// The participant endpoints of a service whose work is `W`, for its OpenAPI document.
pub fn openapi<W: TpcWork>() -> shared::openapi::Document {
    use utoipa::{
        PartialSchema, ToSchema,
        openapi::{
            ComponentsBuilder, ContentBuilder, OpenApiBuilder, Ref, RefOr, Required, ResponseBuilder,
            path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, Paths},
            request_body::RequestBodyBuilder,
            schema::{ObjectBuilder, Type},
        },
    };

    let gid = ParameterBuilder::new()
        .name("gid")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(format!(
            "The global transaction id: `txlab_<transaction id, 32 lowercase hex>_{}`",
            W::PARTICIPANT
        )))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^txlab_[0-9a-f]{{32}}_{}$", W::PARTICIPANT))),
        ))
        .build();
    let json = |name: &str| ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build();
    let answer = |description: &str, name: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", json(name))
            .build()
    };
    let empty_body = || {
        RequestBodyBuilder::new()
            .description(Some("Optional: `{}`"))
            .required(Some(Required::False))
            .content("application/json", json(&NoFields::name()))
            .build()
    };
    let operation = |summary: &str, tag: &str| {
        OperationBuilder::new()
            .summary(Some(summary))
            .tag(tag)
            .parameter(gid.clone())
    };
    let prepare = operation("Phase one: do the work and prepare it, holding its locks", "2pc")
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json(&W::Payload::name()))
                .build(),
        ))
        .response("200", answer("Voted yes: prepared", "PrepareAnswer"))
        .response(
            "422",
            ResponseBuilder::new().description("Votes no: the work is refused (no stock, a declined card, …)"),
        )
        .response(
            "423",
            ResponseBuilder::new().description("Votes no: rows it needs are locked by another transaction"),
        )
        .response(
            "409",
            ResponseBuilder::new().description("Votes no: the transaction was aborted already"),
        );
    let commit = operation("Phase two: commit (repeating it is harmless)", "2pc")
        .request_body(Some(empty_body()))
        .response("200", answer("Committed", "FinishAnswer"))
        .response(
            "409",
            ResponseBuilder::new().description("Never prepared here, or rolled back"),
        )
        .response(
            "423",
            ResponseBuilder::new().description("Being finished by another session right now"),
        );
    let abort = operation(
        "Phase two: abort (repeating it, or aborting what was never prepared, is harmless)",
        "2pc",
    )
    .request_body(Some(empty_body()))
    .response("200", answer("Aborted", "FinishAnswer"))
    .response("409", ResponseBuilder::new().description("Committed already"))
    .response(
        "423",
        ResponseBuilder::new().description("Being finished by another session right now"),
    );
    let prepared = OperationBuilder::new()
        .summary(Some(
            "This database's prepared transactions: what 2PC holds locked, and for how long",
        ))
        .tag("2pc")
        .response("200", answer("Prepared transactions, oldest first", "PreparedList"));
    let paths = Paths::builder()
        .path("/tpc/{gid}/prepare", PathItem::new(HttpMethod::Post, prepare))
        .path("/tpc/{gid}/commit", PathItem::new(HttpMethod::Post, commit))
        .path("/tpc/{gid}/abort", PathItem::new(HttpMethod::Post, abort))
        .path("/tpc/prepared", PathItem::new(HttpMethod::Get, prepared));

    let mut schemas = Vec::new();
    W::Payload::schemas(&mut schemas);
    W::Detail::schemas(&mut schemas);
    FinishAnswer::schemas(&mut schemas);
    PreparedList::schemas(&mut schemas);
    let prepare_answer = ObjectBuilder::new()
        .property("gid", ObjectBuilder::new().schema_type(Type::String))
        .required("gid")
        .property("vote", Ref::from_schema_name(<Vote as ToSchema>::name()))
        .required("vote")
        .property(
            "detail",
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(Ref::from_schema_name(W::Detail::name()))
                .item(
                    ObjectBuilder::new()
                        .property("already", Ref::from_schema_name(Already::name()))
                        .required("already"),
                )
                .description(Some(
                    "What the participant prepared, or, for a repeated prepare, that it was prepared or committed already",
                )),
        )
        .required("detail")
        .build();
    let components = ComponentsBuilder::new()
        .schema(W::Payload::name(), W::Payload::schema())
        .schema(W::Detail::name(), W::Detail::schema())
        .schema(Already::name(), Already::schema())
        .schema(NoFields::name(), NoFields::schema())
        .schema(<Vote as ToSchema>::name(), Vote::schema())
        .schema(FinishAnswer::name(), FinishAnswer::schema())
        .schema(FinishOutcome::name(), FinishOutcome::schema())
        .schema(PreparedList::name(), PreparedList::schema())
        .schema(PreparedTransaction::name(), PreparedTransaction::schema())
        .schema(HeldLock::name(), HeldLock::schema())
        .schema("PrepareAnswer", RefOr::T(prepare_answer.into()))
        .schemas_from_iter(schemas)
        .build();
    OpenApiBuilder::new().paths(paths).components(Some(components)).build()
}
