use hyperfake_core::{Bytes, FunctionConfig, ImageTag};

use crate::common::{TestDb, config};

#[tokio::test]
async fn create_get_list_delete_round_trip() {
    let db = TestDb::start().await;
    let client = db.client();
    assert_eq!(client.list().await.unwrap(), vec![]);

    let echo = client.create(&ImageTag::from("hyperfaas-echo:latest"), &config()).await.unwrap();
    assert_eq!(echo.image_tag, ImageTag::from("hyperfaas-echo:latest"));
    assert_eq!(echo.config, config());
    assert!(echo.created_at.0 > 0);
    assert_eq!(uuid::Uuid::parse_str(echo.id.as_str()).unwrap().get_version_num(), 4);

    let unlimited =
        FunctionConfig { memory: Bytes::mib(64), cpu: None, idle_timeout: None, max_concurrency: None };
    let thumbnailer = client.create(&ImageTag::from("hyperfaas-thumbnailer:v2"), &unlimited).await.unwrap();
    assert_eq!(thumbnailer.config, unlimited);

    assert_eq!(client.get(&echo.id).await.unwrap(), echo);
    assert_eq!(client.list().await.unwrap(), vec![echo.clone(), thumbnailer.clone()]);

    assert_eq!(client.delete(&echo.id).await.unwrap(), echo);
    assert!(client.get(&echo.id).await.unwrap_err().is_not_found());
    assert_eq!(client.list().await.unwrap(), vec![thumbnailer]);
}

#[tokio::test]
async fn a_killed_server_loses_nothing_that_was_acknowledged() {
    let mut db = TestDb::start().await;
    let client = db.client();
    let mut created = Vec::new();
    for image in ["hyperfaas-echo:latest", "hyperfaas-bfs:latest", "hyperfaas-thumbnailer:latest"] {
        created.push(client.create(&ImageTag::from(image), &config()).await.unwrap());
    }
    let deleted = created.remove(1);
    client.delete(&deleted.id).await.unwrap();

    db.restart().await;
    let client = db.client();
    assert_eq!(client.list().await.unwrap(), created);
    assert_eq!(client.get(&created[0].id).await.unwrap(), created[0]);
    assert!(client.get(&deleted.id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_record_edited_into_nonsense_is_data_loss_not_a_bogus_function() {
    let db = TestDb::start().await;
    let client = db.client();
    let echo = client.create(&ImageTag::from("hyperfaas-echo:latest"), &config()).await.unwrap();
    rusqlite::Connection::open(db.path())
        .unwrap()
        .execute("UPDATE functions SET memory_bytes = -1", [])
        .unwrap();

    let err = client.get(&echo.id).await.unwrap_err();
    let database::ClientError::StoredInvalid { id, source, .. } = &err else {
        panic!("expected StoredInvalid, got {err:?}")
    };
    assert_eq!(*id, echo.id);
    assert_eq!(source.code(), tonic::Code::DataLoss);
    assert!(source.message().contains("config.memory"), "{source:?}");
    assert!(!err.is_unavailable(), "a row that does not validate is not worth retrying");
}
