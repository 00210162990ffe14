//! The worker's contract ([`hyperfake_testkit::contract`]) against both
//! runtimes: the real worker over Docker and the function images, and the
//! fake worker over the committed random-forest models in `models/`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use database::DatabaseClient;
use fakeworker::{ModelRegistry, SimRuntime, SimSettings};
use hyperfake_testkit::contract::{self, Behaviour, DockerSubject, Subject};
use hyperfake_testkit::{ECHO, SIMUL, TestWorker};
use worker::WorkerSettings;

/// The newest committed training run's random forests (`models/<run>/random-forest`)
/// that model both images the contract needs.
fn committed_models() -> PathBuf {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&models)
        .unwrap_or_else(|e| panic!("reading {}: {e}", models.display()))
        .filter_map(|e| Some(e.ok()?.path().join("random-forest")))
        .filter(|dir| ["hyperfaas-echo.onnx", "hyperfaas-simul.onnx"].iter().all(|f| dir.join(f).is_file()))
        .collect();
    runs.sort();
    runs.pop().unwrap_or_else(|| {
        panic!("no committed run in {} has random forests for echo and simul", models.display())
    })
}

/// The fake worker over committed models, with its default settings.
struct FakeSubject {
    registry: Arc<ModelRegistry>,
}

impl FakeSubject {
    fn committed() -> Self {
        let dir = committed_models();
        let (registry, skipped) = ModelRegistry::load(Some(dir.clone()), vec![]).unwrap();
        assert!(skipped.is_empty(), "committed models in {} failed to load: {skipped:?}", dir.display());
        FakeSubject { registry: Arc::new(registry) }
    }
}

impl Subject for FakeSubject {
    fn name(&self) -> &str {
        "fakeworker"
    }

    fn image(&self, behaviour: Behaviour) -> &str {
        match behaviour {
            Behaviour::Quick => ECHO,
            Behaviour::Slow => SIMUL,
        }
    }

    fn worker(
        &self,
        settings: WorkerSettings,
        database: DatabaseClient,
    ) -> impl Future<Output = TestWorker> + Send {
        let runtime = SimRuntime::new(Arc::clone(&self.registry), SimSettings::default());
        TestWorker::with_runtime(settings, Arc::new(runtime), database)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_and_the_fake_worker_keep_the_same_contract() {
    let real = DockerSubject::new();
    let fake = FakeSubject::committed();
    let (real_ran, fake_ran) = tokio::join!(contract::run(&real), contract::run(&fake));
    let all: Vec<&str> = contract::CASES.iter().map(|(name, _)| *name).collect();
    assert!(!all.is_empty(), "the contract has no case: nothing would be tested");
    assert_eq!(real_ran, all, "cases run against the real worker");
    assert_eq!(fake_ran, all, "cases run against the fake worker");
}
