//! `db org|service|endpoint|client|prefix|agreement|alias ...`: one object at a time.

#[allow(
    clippy::wildcard_imports,
    reason = "the db command's shared imports and helpers"
)]
use super::*;

pub(super) async fn org(cx: &Ctx<'_>, cmd: OrgCommand) -> Result<ExitCode> {
    let (db, origin) = (cx.db, cx.origin);
    match cmd {
        OrgCommand::List => {
            let all = db.organisations().await?;
            cx.show(
                || all.iter().map(text::organisation_json).collect(),
                || {
                    for o in &all {
                        println!("{}\t{}", o.id, o.name);
                    }
                },
            )
        }
        OrgCommand::Show { id } => {
            let o = db
                .organisation(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Organisation, &id))?;
            let services: Vec<Service> = (db.services().await?.into_iter())
                .filter(|s| s.organisation == id)
                .collect();
            let clients: Vec<Client> = (db.clients().await?.into_iter())
                .filter(|c| c.organisation == id)
                .collect();
            cx.show(
                || {
                    let mut v = text::organisation_json(&o);
                    v["services"] = services.iter().map(text::service_json).collect();
                    v["clients"] = clients.iter().map(text::client_json).collect();
                    v
                },
                || {
                    println!("organisation {:?}: {}", o.id, o.name);
                    for s in &services {
                        println!("  service {:?}: {}", s.id, s.name);
                    }
                    for c in &clients {
                        println!("  client {:?}", c.id);
                    }
                },
            )
        }
        OrgCommand::Create { id, name } => {
            change(
                cx,
                db.create_organisation(&Organisation { id, name }, origin),
            )
            .await
        }
        OrgCommand::Update { id, name } => {
            change(
                cx,
                db.update_organisation(&Organisation { id, name }, origin),
            )
            .await
        }
        OrgCommand::Delete { id } => change(cx, db.delete_organisation(&id, origin)).await,
    }
}

fn print_endpoint(e: &Endpoint) {
    let ports = if e.protocol.has_ports() && e.ports.is_empty() {
        " (every port)".to_owned()
    } else if e.ports.is_empty() {
        String::new()
    } else {
        format!(
            " {}",
            e.ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    println!("  endpoint {} {}{ports}", e.address, e.protocol.name());
}

/// Shows a service or client with the agreements `filter` selects: its JSON with an
/// `agreements` array, or `text` followed by one `  agreement ...` line each.
async fn show_with_agreements(
    cx: &Ctx<'_>,
    filter: &AgreementFilter,
    mut json: serde_json::Value,
    text: impl FnOnce(),
) -> Result<ExitCode> {
    let agreements = cx.db.agreements(filter).await?;
    cx.show(
        || {
            json["agreements"] = agreements.iter().map(text::agreement_json).collect();
            json
        },
        || {
            text();
            for a in &agreements {
                println!("  agreement {}", agreement_line(a));
            }
        },
    )
}

fn agreement_line(a: &Agreement) -> String {
    let mut s = format!("{} {} -> {} {}", a.id, a.client, a.service, a.state.name());
    if let Some(e) = a.expires {
        s.push_str(&format!(" expires {e}"));
    }
    if let Some(v) = a.vlan {
        s.push_str(&format!(" vlan {v}"));
    }
    s
}

/// Splits port arguments on commas; `None` when there are none.
fn port_items(ports: &[String]) -> Option<Vec<String>> {
    let items: Vec<String> = ports
        .iter()
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    (!items.is_empty()).then_some(items)
}

pub(super) async fn service(cx: &Ctx<'_>, cmd: ServiceCommand) -> Result<ExitCode> {
    let (db, origin) = (cx.db, cx.origin);
    match cmd {
        ServiceCommand::List { organisation } => {
            let all: Vec<Service> = (db.services().await?.into_iter())
                .filter(|s| organisation.as_ref().is_none_or(|o| *o == s.organisation))
                .collect();
            cx.show(
                || all.iter().map(text::service_json).collect(),
                || {
                    for s in &all {
                        println!(
                            "{}\t{}\t{}\t{} endpoint(s)",
                            s.id,
                            s.organisation,
                            s.name,
                            s.endpoints.len()
                        );
                    }
                },
            )
        }
        ServiceCommand::Show { id } => {
            let s = db
                .service(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Service, &id))?;
            let filter = AgreementFilter {
                service: Some(id),
                ..AgreementFilter::default()
            };
            show_with_agreements(cx, &filter, text::service_json(&s), || {
                println!(
                    "service {:?}: {} (organisation {:?})",
                    s.id, s.name, s.organisation
                );
                for e in &s.endpoints {
                    print_endpoint(e);
                }
            })
            .await
        }
        ServiceCommand::Create {
            id,
            organisation,
            name,
            endpoints,
        } => {
            let mut parsed = Vec::new();
            for (i, spec) in endpoints.iter().enumerate() {
                let words: Vec<&str> = spec.split_whitespace().collect();
                let (address, protocol, ports) = match words.as_slice() {
                    [a, p] => (*a, *p, Vec::new()),
                    [a, p, rest @ ..] => (*a, *p, rest.iter().map(|s| (*s).to_owned()).collect()),
                    _ => bail!(
                        "service {id:?}: endpoint[{i}]: {spec:?} is not \"ADDRESS PROTOCOL [PORTS]\""
                    ),
                };
                let items = port_items(&ports);
                let e = db
                    .endpoint_from_text(address, protocol, items.as_deref())
                    .await
                    .with_context(|| format!("service {id:?}"))?;
                parsed.push(e);
            }
            let s = Service {
                id,
                organisation,
                name,
                endpoints: parsed,
            };
            change(cx, db.create_service(&s, origin)).await
        }
        ServiceCommand::Update { id, name } => {
            change(cx, db.rename_service(&id, &name, origin)).await
        }
        ServiceCommand::Move { id, to } => change(cx, db.move_service(&id, &to, origin)).await,
        ServiceCommand::Delete { id } => change(cx, db.delete_service(&id, origin)).await,
    }
}

pub(super) async fn endpoint(cx: &Ctx<'_>, cmd: EndpointCommand) -> Result<ExitCode> {
    let (db, origin) = (cx.db, cx.origin);
    match cmd {
        EndpointCommand::Add {
            service,
            address,
            protocol,
            ports,
        } => {
            let items = port_items(&ports);
            let e = db
                .endpoint_from_text(&address, &protocol, items.as_deref())
                .await?;
            change(cx, db.add_endpoint(&service, &e, origin)).await
        }
        EndpointCommand::Delete {
            service,
            address,
            protocol,
            ports,
        } => {
            let items = port_items(&ports);
            let e = db
                .endpoint_from_text(&address, &protocol, items.as_deref())
                .await?;
            change(
                cx,
                db.delete_endpoint(&service, &e, items.is_some(), origin),
            )
            .await
        }
    }
}

/// A prefix as typed (host bits are reported by validation, with the prefix meant).
fn parse_prefix(client: &str, text: &str) -> Result<IpNet> {
    text::parse_net(text).map_err(|e| anyhow!("client {client:?}: field `prefixes`: {e}"))
}

pub(super) async fn client(cx: &Ctx<'_>, cmd: ClientCommand) -> Result<ExitCode> {
    let (db, origin) = (cx.db, cx.origin);
    match cmd {
        ClientCommand::List { organisation } => {
            let all: Vec<Client> = (db.clients().await?.into_iter())
                .filter(|c| organisation.as_ref().is_none_or(|o| *o == c.organisation))
                .collect();
            cx.show(
                || all.iter().map(text::client_json).collect(),
                || {
                    for c in &all {
                        let prefixes: Vec<String> =
                            c.prefixes.iter().map(ToString::to_string).collect();
                        println!("{}\t{}\t{}", c.id, c.organisation, prefixes.join(" "));
                    }
                },
            )
        }
        ClientCommand::Show { id } => {
            let c = db
                .client(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Client, &id))?;
            let filter = AgreementFilter {
                client: Some(id),
                ..AgreementFilter::default()
            };
            show_with_agreements(cx, &filter, text::client_json(&c), || {
                println!("client {:?} (organisation {:?})", c.id, c.organisation);
                for p in &c.prefixes {
                    println!("  prefix {p}");
                }
            })
            .await
        }
        ClientCommand::Create {
            id,
            organisation,
            prefixes,
        } => {
            let prefixes = prefixes
                .iter()
                .map(|p| parse_prefix(&id, p))
                .collect::<Result<Vec<_>>>()?;
            let c = Client {
                id,
                organisation,
                prefixes,
            };
            change(cx, db.create_client(&c, origin)).await
        }
        ClientCommand::Update { id, organisation } => {
            change(cx, db.move_client(&id, &organisation, origin)).await
        }
        ClientCommand::Delete { id } => change(cx, db.delete_client(&id, origin)).await,
    }
}

pub(super) async fn prefix(cx: &Ctx<'_>, cmd: PrefixCommand) -> Result<ExitCode> {
    let (db, origin) = (cx.db, cx.origin);
    match cmd {
        PrefixCommand::Add { client, prefix } => {
            let p = parse_prefix(&client, &prefix)?;
            change(cx, db.add_prefix(&client, p, origin)).await
        }
        PrefixCommand::Delete { client, prefix } => {
            let p = parse_prefix(&client, &prefix)?;
            change(cx, db.delete_prefix(&client, p, origin)).await
        }
    }
}

pub(super) async fn agreement(cx: &Ctx<'_>, cmd: AgreementCommand) -> Result<ExitCode> {
    let (db, origin) = (cx.db, cx.origin);
    match cmd {
        AgreementCommand::List {
            client,
            service,
            state,
        } => {
            let filter = AgreementFilter {
                client,
                service,
                state: state.map(Into::into),
            };
            let all = db.agreements(&filter).await?;
            cx.show(
                || all.iter().map(text::agreement_json).collect(),
                || {
                    for a in &all {
                        println!("{}", agreement_line(a));
                    }
                },
            )
        }
        AgreementCommand::Show { id } => {
            let a = db
                .agreement(id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Agreement, &id.to_string()))?;
            cx.show(
                || text::agreement_json(&a),
                || println!("agreement {}", agreement_line(&a)),
            )
        }
        AgreementCommand::Create {
            id,
            client,
            service,
            state,
            expires,
            vlan,
        } => {
            let a = Agreement {
                id,
                client,
                service,
                state: state.into(),
                expires,
                vlan,
            };
            change(cx, db.create_agreement(&a, origin)).await
        }
        AgreementCommand::Update {
            id,
            client,
            service,
            state,
            expires,
            no_expiry,
            vlan,
            any_vlan,
        } => {
            // Only the fields given: the rest is read and kept inside the same transaction.
            let edit = AgreementEdit {
                client,
                service,
                state: state.map(Into::into),
                expires: (expires.is_some() || no_expiry).then_some(expires),
                vlan: (vlan.is_some() || any_vlan).then_some(vlan),
            };
            change(cx, db.update_agreement(id, &edit, origin)).await
        }
        AgreementCommand::Delete { id } => change(cx, db.delete_agreement(id, origin)).await,
        AgreementCommand::Approve { id } => {
            change(cx, db.transition(id, Transition::Approve, origin)).await
        }
        AgreementCommand::Reject { id } => {
            change(cx, db.transition(id, Transition::Reject, origin)).await
        }
        AgreementCommand::Revoke { id } => {
            change(cx, db.transition(id, Transition::Revoke, origin)).await
        }
        AgreementCommand::Request { id } => {
            change(cx, db.transition(id, Transition::Request, origin)).await
        }
    }
}

fn alias_line(a: &PortAlias) -> String {
    let ports: Vec<String> = a.ports.iter().map(ToString::to_string).collect();
    format!("{} {} {}", a.name, a.protocol.name(), ports.join(","))
}

pub(super) async fn alias(cx: &Ctx<'_>, cmd: AliasCommand) -> Result<ExitCode> {
    let (db, origin) = (cx.db, cx.origin);
    match cmd {
        AliasCommand::List => {
            let all = db.port_aliases().await?;
            cx.show(
                || all.iter().map(text::port_alias_json).collect(),
                || {
                    for a in &all {
                        println!("{}", alias_line(a));
                    }
                },
            )
        }
        AliasCommand::Show { name } => {
            let a = db
                .port_alias(&name)
                .await?
                .ok_or_else(|| not_found(ObjectKind::PortAlias, &name))?;
            cx.show(
                || text::port_alias_json(&a),
                || println!("{}", alias_line(&a)),
            )
        }
        AliasCommand::Create {
            name,
            protocol,
            ports,
        } => {
            let items = port_items(&ports).unwrap_or_default();
            let a = port_alias_from_text(&name, &protocol, &items)?;
            change(cx, db.create_port_alias(&a, origin)).await
        }
        AliasCommand::Delete { name } => change(cx, db.delete_port_alias(&name, origin)).await,
    }
}
