//! `apply`, `delete` and `validate`: manifests of every kind.

use cloudless_core::manifest::ManifestSpec;

use super::args::{ApplyArgs, DeleteArgs, FilesArg, GlobalArgs, OutputFormat};
use super::context;
use super::error::{CtlError, CtlResult, exit};
use super::files::{self, ObjectRef};
use super::output::{self, List, ResultView, RolloutView};
use super::progress;

/// `validate -f`: offline checks; every problem on its own line, exit 1 if any.
pub(crate) fn validate(g: &GlobalArgs, f: &FilesArg) -> CtlResult {
    let inputs = files::read_inputs(&f.files)?;
    let reports = files::check(&inputs);
    let bad = reports.iter().filter(|r| !r.valid).count();
    match g.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            output::print_doc(g.output, &List::new("ValidationReport", reports.clone()))?;
        }
        _ => {
            for r in &reports {
                if r.valid {
                    let objs: Vec<String> = r.objects.iter().map(obj_name).collect();
                    println!("{}: valid ({})", r.file, objs.join(", "));
                } else {
                    for p in &r.errors {
                        eprintln!("{}", files::problem_line(p));
                    }
                }
            }
        }
    }
    if bad > 0 {
        return Err(CtlError::general(format!(
            "{bad} of {} file(s) invalid; fix the fields named above",
            reports.len()
        )));
    }
    Ok(())
}

fn obj_name(o: &ObjectRef) -> String {
    format!("{}/{}/{}", o.kind.to_lowercase(), o.namespace, o.name)
}

fn print_results(
    g: &GlobalArgs,
    results: Vec<ResultView>,
    rollouts: Vec<RolloutView>,
) -> CtlResult {
    match g.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            #[derive(serde::Serialize)]
            struct Doc {
                kind: &'static str,
                items: Vec<ResultView>,
                rollouts: Vec<RolloutView>,
            }
            output::print_doc(
                g.output,
                &Doc {
                    kind: "ApplyResultList",
                    items: results,
                    rollouts,
                },
            )
        }
        _ => Ok(()),
    }
}

fn text(g: &GlobalArgs) -> bool {
    matches!(g.output, OutputFormat::Table | OutputFormat::Wide)
}

/// `apply -f`: each input is checked offline, then applied as a whole; prints
/// `created`/`configured`/`unchanged` per object.
pub(crate) async fn apply(g: &GlobalArgs, a: &ApplyArgs) -> CtlResult {
    let inputs = files::read_inputs(&a.files.files)?;
    let parsed = files::parse_all(&inputs)?;
    let ctx = context::resolve(g)?;
    let client = ctx.client()?;
    let mut results = Vec::new();
    let mut workloads = Vec::new();
    for (i, manifests) in parsed {
        let input = &inputs[i];
        if let Some(m) = manifests
            .iter()
            .find(|m| !matches!(m.spec, ManifestSpec::Workload(_) | ManifestSpec::Service(_)))
        {
            return Err(CtlError::new(
                exit::UNSUPPORTED,
                format!(
                    "{}: document {}: kind {} cannot be applied by this cluster yet; nothing from this file was applied",
                    input.name,
                    m.source.document,
                    m.kind()
                ),
            ));
        }
        let r = client
            .apply(&input.text)
            .await
            .map_err(|e| CtlError::api(&format!("applying {}", input.name), &e))?;
        for res in r.results {
            let action = if res.action == "updated" {
                "configured".to_owned()
            } else {
                res.action.clone()
            };
            if text(g) {
                println!(
                    "{}/{}/{} {action}",
                    res.kind.to_lowercase(),
                    res.namespace,
                    res.name
                );
            }
            if res.kind == "Workload" {
                workloads.push((res.namespace.clone(), res.name.clone()));
            }
            results.push(ResultView {
                file: input.name.clone(),
                kind: res.kind,
                namespace: res.namespace,
                name: res.name,
                action,
                generation: res.generation,
            });
        }
    }
    let mut rollouts = Vec::new();
    if a.wait && !workloads.is_empty() {
        let done = progress::wait_all(&client, &workloads, a.timeout).await?;
        rollouts = done.iter().map(RolloutView::from).collect();
    }
    print_results(g, results, rollouts)
}

/// `delete -f`: deletes every object the manifests name.
pub(crate) async fn delete(g: &GlobalArgs, d: &DeleteArgs) -> CtlResult {
    let inputs = files::read_inputs(&d.files.files)?;
    let parsed = files::parse_all(&inputs)?;
    let ctx = context::resolve(g)?;
    let client = ctx.client()?;
    let mut results = Vec::new();
    let mut first_error: Option<CtlError> = None;
    for (i, manifests) in parsed {
        let input = &inputs[i];
        for m in manifests {
            let ns = m.metadata.namespace.clone();
            let name = m.metadata.name.clone();
            let kind = m.kind().as_str().to_owned();
            let label = format!("{}/{ns}/{name}", kind.to_lowercase());
            let outcome = match m.spec {
                ManifestSpec::Workload(_) => match client.delete_workload(&ns, &name).await {
                    Ok(()) => Ok("deleted"),
                    Err(e) => {
                        let err = CtlError::api(&format!("deleting {label} ({})", input.name), &e);
                        if err.code == exit::NOT_FOUND && d.ignore_not_found {
                            Ok("notFound")
                        } else {
                            Err(err)
                        }
                    }
                },
                _ => Err(CtlError::new(
                    exit::UNSUPPORTED,
                    format!(
                        "deleting {label} ({}): the cluster's API cannot delete kind {kind} yet",
                        input.name
                    ),
                )),
            };
            match outcome {
                Ok(action) => {
                    if text(g) {
                        println!("{label} {action}");
                    }
                    results.push(ResultView {
                        file: input.name.clone(),
                        kind,
                        namespace: ns,
                        name,
                        action: action.to_owned(),
                        generation: 0,
                    });
                }
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    } else {
                        eprintln!("error: {}", e.message);
                    }
                }
            }
        }
    }
    if let OutputFormat::Json | OutputFormat::Yaml = g.output {
        output::print_doc(g.output, &List::new("DeleteResult", results))?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
