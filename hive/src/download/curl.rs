//! surf's HTTP backend: libcurl through isahc, as surf's `curl-client` feature, with the fixes a
//! downloader needs:
//!
//! - a request without a body is sent without one. surf's stock backend always attaches a sized
//!   (zero-length) body, which makes isahc send `HEAD` as a custom request that waits for the
//!   `Content-Length` bytes a HEAD answer never carries: every HEAD of a non-LFS file would hang.
//! - redirects are never followed (we decide where the token goes), and bytes are never decoded
//!   (what we hash is what the hub stored).
//! - a response header that is not valid text is skipped instead of panicking the task.

use http_client::{Body, Config, Error, HttpClient, Request, Response};
use isahc::config::{Configurable, RedirectPolicy};
use std::time::Duration;

/// Connect timeout for upstream requests (the body has its own stall timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// An `http_client::HttpClient` over one isahc (libcurl) client.
#[derive(Debug)]
pub struct CurlClient {
    client: isahc::HttpClient,
    config: Config,
}

impl CurlClient {
    /// A client that never follows redirects nor decompresses.
    ///
    /// # Errors
    /// When libcurl cannot be initialised.
    pub fn new() -> Result<Self, isahc::Error> {
        let client = isahc::HttpClient::builder()
            .redirect_policy(RedirectPolicy::None)
            .automatic_decompression(false)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay()
            .build()?;
        let config = Config::new().set_timeout(None).set_tcp_no_delay(true);
        Ok(Self { client, config })
    }
}

#[async_trait::async_trait]
impl HttpClient for CurlClient {
    async fn send(&self, mut req: Request) -> Result<Response, Error> {
        let method = isahc::http::Method::from_bytes(req.method().to_string().as_bytes())?;
        let mut builder = isahc::http::Request::builder().uri(req.url().as_str()).method(method);
        for (name, values) in req.iter() {
            for value in values {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        let body = req.take_body();
        let body = match body.len() {
            Some(0) => isahc::Body::empty(),
            Some(len) => isahc::Body::from_reader_sized(body, len as u64),
            None => isahc::Body::from_reader(body),
        };
        let res = self.client.send_async(builder.body(body)?).await?;
        let (parts, body) = res.into_parts();
        let mut response = Response::new(parts.status.as_u16());
        for (name, value) in &parts.headers {
            if let Ok(value) = http_client::http_types::headers::HeaderValue::from_bytes(value.as_bytes().to_vec()) {
                response.append_header(name.as_str(), value);
            }
        }
        response.set_body(Body::from_reader(futures_lite::io::BufReader::new(body), None));
        Ok(response)
    }

    fn set_config(&mut self, config: Config) -> http_client::http_types::Result<()> {
        self.config = config;
        Ok(())
    }

    fn config(&self) -> &Config {
        &self.config
    }
}
