//! Application assembly: shared state, start-up in steps (build → address → run), and graceful
//! shutdown that closes device sessions before the listener stops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;

use crate::channel::session::SessionContext;
use crate::channel::ChannelSettings;
use crate::config::Config;
use crate::escalation::EscalationContext;
use crate::geo::basemap::TileSource;
use crate::service::Dispatch;
use crate::tls::{self, TlsMaterial};
use dispatch_geo::geocode::{self, Geocoder};
use dispatch_geo::road::{load_or_import, RoadGraph};

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store and the live state its commits keep current.
    pub dispatch: Dispatch,
    /// The road graph, when a map is configured.
    pub roads: Option<Arc<RoadGraph>>,
    /// Address search over the same map, when one is configured.
    pub geocoder: Option<Arc<Geocoder>>,
    /// Basemap tiles, when a map or an MBTiles file is configured.
    pub tiles: Option<Arc<TileSource>>,
    /// Login throttling and the password workers.
    pub logins: crate::auth::Logins,
    /// The outcome of the last scheduled backup.
    pub backups: crate::backup::schedule::BackupStatus,
    pub config: Arc<Config>,
    /// The certificate fingerprints announced to devices, kept current by [`tls::watch`].
    pub tls_pins: tokio::sync::watch::Receiver<Arc<[String]>>,
}

impl AppState {
    /// What a device session needs.
    pub fn session_context(&self) -> SessionContext {
        SessionContext {
            store: self.dispatch.store.clone(),
            devices: self.dispatch.devices.clone(),
            live: self.dispatch.live.clone(),
            settings: ChannelSettings {
                heartbeat: Duration::from_secs(self.config.heartbeat_secs),
                inflight_window: self.config.inflight_window,
                trail_sample: Duration::from_secs(self.config.trail_sample_secs),
            },
            pins: self.tls_pins.clone(),
            metrics: self.dispatch.metrics.clone(),
            servers: self.config.server_urls.clone().into(),
        }
    }

    /// What the escalation sweep needs.
    pub fn escalation_context(&self) -> EscalationContext {
        EscalationContext {
            store: self.dispatch.store.clone(),
            devices: self.dispatch.devices.clone(),
            live: self.dispatch.live.clone(),
            roads: self.roads.clone(),
            ladder: self.config.escalation.clone(),
            attention: self.config.attention.clone(),
            link_lost: Duration::from_secs(self.config.link_lost_secs),
            sms: self.config.sms.clone(),
            stale_fix: Duration::from_secs(self.config.stale_fix_secs),
            metrics: self.dispatch.metrics.clone(),
        }
    }
}

/// A built server, bound to its address, not yet serving.
#[derive(Debug)]
pub struct Application {
    state: AppState,
    tls: TlsMaterial,
    tls_pins: tokio::sync::watch::Sender<Arc<[String]>>,
    listener: std::net::TcpListener,
    /// This process's claim on the data directory, held until the server stops.
    lock: crate::data_dir_lock::DataDirLock,
}

impl Application {
    /// Opens the data directory and database, loads the live index, prepares TLS and binds.
    ///
    /// # Errors
    /// When any of those steps fails; the message says which.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.prepare_data_dir()?;
        let lock =
            crate::data_dir_lock::DataDirLock::acquire(&config.data_dir, "starting another")?;
        let dispatch = match config.store.backend {
            crate::config::Backend::Sqlite => Dispatch::open(&config.database_path())
                .await
                .with_context(|| {
                    format!("opening database {}", config.database_path().display())
                })?,
            crate::config::Backend::Postgres => {
                let settings = config.store.postgres()?;
                let dispatch = Dispatch::open_postgres(settings.clone())
                    .await
                    .with_context(|| format!("opening the PostgreSQL database {settings:?}"))?;
                let standbys = dispatch.store.synchronous_standbys().await?.unwrap_or(0);
                anyhow::ensure!(
                    standbys > 0 || !config.store.require_synchronous_standby,
                    "[store] require_synchronous_standby is set, and no COMMIT of the primary \
                     waits for a synchronous standby now (synchronous_standby_names, or Patroni's \
                     synchronous_mode): a confirmed order would be on one machine only"
                );
                dispatch
            }
        };
        // Three independent imports of the same map: run them side by side.
        let cache_dir = config.data_dir.join("cache");
        let (roads, geocoder, tiles) = tokio::try_join!(
            async {
                match &config.map {
                    Some(path) => Ok(Some(Arc::new(load_map(path.clone(), cache_dir).await?))),
                    None => anyhow::Ok(None),
                }
            },
            async {
                match &config.map {
                    Some(path) => Ok(Some(Arc::new(load_geocoder(path.clone()).await?))),
                    None => anyhow::Ok(None),
                }
            },
            crate::geo::basemap::load(&config),
        )?;
        let tls = tls::load_or_generate(&config)?;
        let (tls_pins, announced) = tokio::sync::watch::channel(Arc::from(tls.pins.clone()));
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        listener.set_nonblocking(true)?;
        // Resolved once the port is known (it may have been 0).
        let mut config = config;
        config.public_url = config.public_origin(listener.local_addr()?)?;
        let state = AppState {
            dispatch,
            roads,
            geocoder,
            tiles,
            logins: crate::auth::Logins::new(&config.accounts),
            backups: crate::backup::schedule::BackupStatus::default(),
            config: Arc::new(config),
            tls_pins: announced,
        };
        Ok(Self {
            state,
            tls,
            tls_pins,
            listener,
            lock,
        })
    }

    /// The bound address (useful with port 0).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// SHA-256 fingerprint of the served certificate.
    pub fn fingerprint(&self) -> &str {
        &self.tls.fingerprint
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then closes device sessions with "going away", lets
    /// requests in flight finish (10 s at most) and closes the database.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let _lock = self.lock;
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        let dispatch = self.state.dispatch.clone();
        let (hub, console) = (dispatch.devices.clone(), dispatch.feed.clone());
        let feed = console.start(dispatch.store.clone());
        let (stop_tasks, tasks_stop) = tokio::sync::watch::channel(false);
        let listener_tls = RustlsConfig::from_config(self.tls.server_config);
        // On SQLite this node is the whole control room; in a cluster on PostgreSQL it follows
        // the others, and sends the SMS fallback while it holds the sender lock.
        let (sends_fallback, cluster) = match dispatch.store.listen_to_cluster() {
            None => (tokio::sync::watch::channel(true).1, None),
            Some(listening) => {
                let listening = listening?;
                tracing::info!(
                    node = dispatch.store.node(),
                    "this node's name in the cluster"
                );
                (listening.sender, Some(listening.heard))
            }
        };
        let mut background = vec![
            tokio::spawn(tls::watch(
                self.state.config.clone(),
                listener_tls.clone(),
                self.tls.fingerprint,
                self.tls_pins,
                tasks_stop.clone(),
            )),
            tokio::spawn(crate::escalation::run(
                self.state.escalation_context(),
                tasks_stop.clone(),
            )),
            tokio::spawn(crate::escalation::fallback::run(
                dispatch.store.clone(),
                self.state.config.sms.clone(),
                dispatch.fallback_wake.clone(),
                sends_fallback,
                tasks_stop.clone(),
            )),
            tokio::spawn(crate::auth::session_sweep::run(
                dispatch.store.clone(),
                dispatch.feed.clone(),
                self.state.config.accounts.idle_timeout_secs,
                tasks_stop.clone(),
            )),
        ];
        if let Some(heard) = cluster {
            background.push(tokio::spawn(crate::cluster::follow(
                dispatch.clone(),
                heard,
                tasks_stop.clone(),
            )));
        }
        if let Some(schedule) = self.state.config.backup.clone() {
            background.push(tokio::spawn(crate::backup::schedule::run(
                self.state.config.data_dir.clone(),
                schedule,
                self.state.backups.clone(),
                tasks_stop,
            )));
        }
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: closing device sessions and consoles");
            hub.drain();
            console.close();
            stopper.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        let app = crate::api::router(self.state.clone());
        axum_server::from_tcp_rustls(self.listener, listener_tls)
            .handle(handle)
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await?;
        let _ = feed.await;
        let _ = stop_tasks.send(true);
        for task in background {
            let _ = task.await;
        }
        dispatch.store.close().await;
        Ok(())
    }
}

/// Imports the road graph off the async threads and reports its size.
async fn load_map(
    path: std::path::PathBuf,
    cache_dir: std::path::PathBuf,
) -> anyhow::Result<RoadGraph> {
    let started = std::time::Instant::now();
    let shown = path.display().to_string();
    let (graph, origin) = tokio::task::spawn_blocking(move || load_or_import(&path, &cache_dir))
        .await?
        .with_context(|| format!("loading map {shown}"))?;
    tracing::info!(
        map = %shown,
        ?origin,
        nodes = graph.node_count(),
        segments = graph.segment_count(),
        ms = started.elapsed().as_millis(),
        "road graph loaded"
    );
    Ok(graph)
}

/// Builds the geocoder off the async threads and reports what it indexed.
async fn load_geocoder(path: std::path::PathBuf) -> anyhow::Result<Geocoder> {
    let started = std::time::Instant::now();
    let shown = path.display().to_string();
    let geocoder = tokio::task::spawn_blocking(move || geocode::import_pbf(&path))
        .await?
        .with_context(|| format!("building geocoder from {shown}"))?;
    tracing::info!(
        map = %shown,
        addresses = geocoder.address_count(),
        streets = geocoder.street_count(),
        places = geocoder.place_count(),
        ms = started.elapsed().as_millis(),
        "geocoder loaded"
    );
    Ok(geocoder)
}
