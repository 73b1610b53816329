//! One try's request as the connection pool gets it. A request that may be retried keeps
//! its head in the stack for the next try: rampart's own HTTP/1.1 client writes the head
//! straight from there, and only hyper's clients, which take the request by value, get a
//! copy. Copying and then dropping a head cost about 1,800 instructions per request, over
//! 5 % of a proxied one (docs/performance.md).

use http::request::Parts;
use http::{HeaderMap, Method, Request, Uri};

use crate::proxy::body::RequestBody;

/// A request for one try.
#[derive(Debug)]
pub enum Outgoing<'a> {
    /// The whole request: the last possible try, a health probe, a request hyper gave back.
    Owned(Request<RequestBody>),
    /// The head the stack keeps for a later try, and this try's body.
    Borrowed {
        /// Method, target and prepared headers; its extensions are not sent.
        head: &'a Parts,
        /// This try's target when it differs from `head.uri` (a stripped prefix).
        target: Option<Uri>,
        /// This try's body.
        body: RequestBody,
    },
}

impl Outgoing<'_> {
    /// The request method.
    pub fn method(&self) -> &Method {
        match self {
            Outgoing::Owned(req) => req.method(),
            Outgoing::Borrowed { head, .. } => &head.method,
        }
    }

    /// The target this try sends.
    pub fn uri(&self) -> &Uri {
        match self {
            Outgoing::Owned(req) => req.uri(),
            Outgoing::Borrowed { head, target, .. } => target.as_ref().unwrap_or(&head.uri),
        }
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        match self {
            Outgoing::Owned(req) => req.headers(),
            Outgoing::Borrowed { head, .. } => &head.headers,
        }
    }

    /// This try's body.
    pub fn body(&self) -> &RequestBody {
        match self {
            Outgoing::Owned(req) => req.body(),
            Outgoing::Borrowed { body, .. } => body,
        }
    }

    /// Sends this try to `uri` instead.
    pub fn set_target(&mut self, uri: Uri) {
        match self {
            Outgoing::Owned(req) => *req.uri_mut() = uri,
            Outgoing::Borrowed { target, .. } => *target = Some(uri),
        }
    }

    /// The request by value, for hyper's clients: a borrowed head is copied (method, target
    /// and headers; the stack's extensions stay behind).
    pub fn into_request(self) -> Request<RequestBody> {
        match self {
            Outgoing::Owned(req) => req,
            Outgoing::Borrowed { head, target, body } => {
                let mut req = Request::new(body);
                *req.method_mut() = head.method.clone();
                *req.uri_mut() = target.unwrap_or_else(|| head.uri.clone());
                *req.headers_mut() = head.headers.clone();
                req
            }
        }
    }
}

impl From<Request<RequestBody>> for Outgoing<'_> {
    fn from(req: Request<RequestBody>) -> Self {
        Outgoing::Owned(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderValue;

    fn head() -> Parts {
        let mut req = Request::new(());
        *req.method_mut() = Method::PUT;
        *req.uri_mut() = "/api/items?id=1".parse().unwrap();
        req.headers_mut()
            .insert("x-one", HeaderValue::from_static("1"));
        req.extensions_mut().insert(7u8);
        req.into_parts().0
    }

    /// A borrowed head reads and converts as the request it stands for; the target override
    /// wins over the head's; the stack's extensions never travel.
    #[test]
    fn a_borrowed_head_is_the_same_request_as_an_owned_copy() {
        let parts = head();
        let body = || RequestBody::Buffered(Some(Bytes::from_static(b"hi")));
        let mut borrowed = Outgoing::Borrowed {
            head: &parts,
            target: None,
            body: body(),
        };
        assert_eq!(borrowed.method(), Method::PUT);
        assert_eq!(borrowed.uri(), "/api/items?id=1");
        assert_eq!(borrowed.headers()["x-one"], "1");
        assert!(matches!(borrowed.body(), RequestBody::Buffered(Some(b)) if b == "hi"));
        borrowed.set_target("/items?id=1".parse().unwrap());
        assert_eq!(borrowed.uri(), "/items?id=1");
        assert_eq!(parts.uri, "/api/items?id=1", "the kept head is untouched");

        let req = borrowed.into_request();
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.uri(), "/items?id=1");
        assert_eq!(req.headers(), &parts.headers);
        assert!(req.extensions().get::<u8>().is_none());

        let mut owned = Outgoing::from(Request::new(body()));
        owned.set_target("/x".parse().unwrap());
        assert_eq!(owned.into_request().uri(), "/x");
    }
}
