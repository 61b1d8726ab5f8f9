//! `db org|service|endpoint|client|prefix|agreement|alias ...`: one object at a time.

#[allow(
    clippy::wildcard_imports,
    reason = "the db command's shared imports and helpers"
)]
use super::*;

pub(super) async fn org(db: &Db, origin: &Origin, cmd: OrgCommand) -> Result<ExitCode> {
    match cmd {
        OrgCommand::List => {
            for o in db.organisations().await? {
                println!("{}\t{}", o.id, o.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        OrgCommand::Show { id } => {
            let o = db
                .organisation(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Organisation, &id))?;
            println!("organisation {:?}: {}", o.id, o.name);
            for s in db.services().await?.iter().filter(|s| s.organisation == id) {
                println!("  service {:?}: {}", s.id, s.name);
            }
            for c in db.clients().await?.iter().filter(|c| c.organisation == id) {
                println!("  client {:?}", c.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        OrgCommand::Create { id, name } => {
            change(
                origin,
                db.create_organisation(&Organisation { id, name }, origin),
            )
            .await
        }
        OrgCommand::Update { id, name } => {
            change(
                origin,
                db.update_organisation(&Organisation { id, name }, origin),
            )
            .await
        }
        OrgCommand::Delete { id } => change(origin, db.delete_organisation(&id, origin)).await,
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

/// `  agreement ...` for each agreement `filter` selects (under a service or client shown).
async fn print_agreements(db: &Db, filter: &AgreementFilter) -> Result<ExitCode> {
    for a in db.agreements(filter).await? {
        println!("  agreement {}", agreement_line(&a));
    }
    Ok(ExitCode::SUCCESS)
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

pub(super) async fn service(db: &Db, origin: &Origin, cmd: ServiceCommand) -> Result<ExitCode> {
    match cmd {
        ServiceCommand::List { organisation } => {
            for s in db.services().await? {
                if organisation.as_ref().is_none_or(|o| *o == s.organisation) {
                    println!(
                        "{}\t{}\t{}\t{} endpoint(s)",
                        s.id,
                        s.organisation,
                        s.name,
                        s.endpoints.len()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Show { id } => {
            let s = db
                .service(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Service, &id))?;
            println!(
                "service {:?}: {} (organisation {:?})",
                s.id, s.name, s.organisation
            );
            for e in &s.endpoints {
                print_endpoint(e);
            }
            let filter = AgreementFilter {
                service: Some(id),
                ..AgreementFilter::default()
            };
            print_agreements(db, &filter).await
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
            change(origin, db.create_service(&s, origin)).await
        }
        ServiceCommand::Update { id, name } => {
            change(origin, db.rename_service(&id, &name, origin)).await
        }
        ServiceCommand::Move { id, to } => change(origin, db.move_service(&id, &to, origin)).await,
        ServiceCommand::Delete { id } => change(origin, db.delete_service(&id, origin)).await,
    }
}

pub(super) async fn endpoint(db: &Db, origin: &Origin, cmd: EndpointCommand) -> Result<ExitCode> {
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
            change(origin, db.add_endpoint(&service, &e, origin)).await
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
                origin,
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

pub(super) async fn client(db: &Db, origin: &Origin, cmd: ClientCommand) -> Result<ExitCode> {
    match cmd {
        ClientCommand::List { organisation } => {
            for c in db.clients().await? {
                if organisation.as_ref().is_none_or(|o| *o == c.organisation) {
                    let prefixes: Vec<String> =
                        c.prefixes.iter().map(ToString::to_string).collect();
                    println!("{}\t{}\t{}", c.id, c.organisation, prefixes.join(" "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Show { id } => {
            let c = db
                .client(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Client, &id))?;
            println!("client {:?} (organisation {:?})", c.id, c.organisation);
            for p in &c.prefixes {
                println!("  prefix {p}");
            }
            let filter = AgreementFilter {
                client: Some(id),
                ..AgreementFilter::default()
            };
            print_agreements(db, &filter).await
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
            change(origin, db.create_client(&c, origin)).await
        }
        ClientCommand::Update { id, organisation } => {
            change(origin, db.move_client(&id, &organisation, origin)).await
        }
        ClientCommand::Delete { id } => change(origin, db.delete_client(&id, origin)).await,
    }
}

pub(super) async fn prefix(db: &Db, origin: &Origin, cmd: PrefixCommand) -> Result<ExitCode> {
    match cmd {
        PrefixCommand::Add { client, prefix } => {
            let p = parse_prefix(&client, &prefix)?;
            change(origin, db.add_prefix(&client, p, origin)).await
        }
        PrefixCommand::Delete { client, prefix } => {
            let p = parse_prefix(&client, &prefix)?;
            change(origin, db.delete_prefix(&client, p, origin)).await
        }
    }
}

pub(super) async fn agreement(db: &Db, origin: &Origin, cmd: AgreementCommand) -> Result<ExitCode> {
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
            for a in db.agreements(&filter).await? {
                println!("{}", agreement_line(&a));
            }
            Ok(ExitCode::SUCCESS)
        }
        AgreementCommand::Show { id } => {
            let a = db
                .agreement(id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Agreement, &id.to_string()))?;
            println!("agreement {}", agreement_line(&a));
            Ok(ExitCode::SUCCESS)
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
            change(origin, db.create_agreement(&a, origin)).await
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
            change(origin, db.update_agreement(id, &edit, origin)).await
        }
        AgreementCommand::Delete { id } => change(origin, db.delete_agreement(id, origin)).await,
        AgreementCommand::Approve { id } => {
            change(origin, db.transition(id, Transition::Approve, origin)).await
        }
        AgreementCommand::Reject { id } => {
            change(origin, db.transition(id, Transition::Reject, origin)).await
        }
        AgreementCommand::Revoke { id } => {
            change(origin, db.transition(id, Transition::Revoke, origin)).await
        }
        AgreementCommand::Request { id } => {
            change(origin, db.transition(id, Transition::Request, origin)).await
        }
    }
}

fn alias_line(a: &PortAlias) -> String {
    let ports: Vec<String> = a.ports.iter().map(ToString::to_string).collect();
    format!("{} {} {}", a.name, a.protocol.name(), ports.join(","))
}

pub(super) async fn alias(db: &Db, origin: &Origin, cmd: AliasCommand) -> Result<ExitCode> {
    match cmd {
        AliasCommand::List => {
            for a in db.port_aliases().await? {
                println!("{}", alias_line(&a));
            }
            Ok(ExitCode::SUCCESS)
        }
        AliasCommand::Show { name } => {
            let a = db
                .port_alias(&name)
                .await?
                .ok_or_else(|| not_found(ObjectKind::PortAlias, &name))?;
            println!("{}", alias_line(&a));
            Ok(ExitCode::SUCCESS)
        }
        AliasCommand::Create {
            name,
            protocol,
            ports,
        } => {
            let items = port_items(&ports).unwrap_or_default();
            let a = port_alias_from_text(&name, &protocol, &items)?;
            change(origin, db.create_port_alias(&a, origin)).await
        }
        AliasCommand::Delete { name } => change(origin, db.delete_port_alias(&name, origin)).await,
    }
}
