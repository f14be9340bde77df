//! For tests only: a TCP server that answers MongoDB's handshake as a MongoDB 4.0 server does
//! (wire version 7) and nothing else, so that the real driver refuses it with its real error.
//!
//! No MongoDB older than 4.4 can be installed here; the handshake is all the driver looks at
//! before it refuses a server, so this is the part of an old server the tests need.

use mongodb::bson::{doc, DateTime, Document};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// OP_REPLY, the answer to a legacy OP_QUERY.
const OP_REPLY: i32 = 1;
/// OP_QUERY, which the driver uses for the legacy `isMaster` handshake.
const OP_QUERY: i32 = 2004;
/// OP_MSG, every other command.
const OP_MSG: i32 = 2013;

/// A running stand-in for an old server; stops when dropped.
pub struct OldMongo {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OldMongo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OldMongo {
    /// Listens on a free port of 127.0.0.1 and answers as a server of `max_wire_version`.
    pub async fn start(max_wire_version: i32) -> std::io::Result<OldMongo> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, max_wire_version));
            }
        });
        Ok(OldMongo { port, task })
    }

    /// A connection string for it.
    pub fn uri(&self, database: &str) -> String {
        format!(
            "mongodb://127.0.0.1:{}/{database}?directConnection=true&serverSelectionTimeoutMS=2000",
            self.port
        )
    }

    /// `host:port`, as the driver names it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn hello(max_wire_version: i32) -> Document {
    doc! {
        "ismaster": true,
        "maxBsonObjectSize": 16_777_216,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": DateTime::now(),
        "minWireVersion": 0,
        "maxWireVersion": max_wire_version,
        "readOnly": false,
        "ok": 1.0,
    }
}

async fn serve(mut stream: TcpStream, max_wire_version: i32) {
    let mut next_id: i32 = 1;
    loop {
        let mut header = [0u8; 16];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let field =
            |i: usize| i32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (length, request_id, op_code) = (field(0), field(4), field(12));
        let mut body = vec![0u8; usize::try_from(length).unwrap_or(16).saturating_sub(16)];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut reply_doc = Vec::new();
        if hello(max_wire_version).to_writer(&mut reply_doc).is_err() {
            return;
        }
        let (op, mut payload) = match op_code {
            OP_QUERY => {
                // responseFlags, cursorID, startingFrom, numberReturned, then the document.
                let mut p = Vec::new();
                p.extend_from_slice(&0i32.to_le_bytes());
                p.extend_from_slice(&0i64.to_le_bytes());
                p.extend_from_slice(&0i32.to_le_bytes());
                p.extend_from_slice(&1i32.to_le_bytes());
                (OP_REPLY, p)
            }
            OP_MSG => {
                // flagBits, then one body section (kind 0).
                let mut p = Vec::new();
                p.extend_from_slice(&0u32.to_le_bytes());
                p.push(0);
                (OP_MSG, p)
            }
            _ => return,
        };
        payload.extend_from_slice(&reply_doc);
        let mut message = Vec::with_capacity(16 + payload.len());
        message.extend_from_slice(&(16 + payload.len() as i32).to_le_bytes());
        message.extend_from_slice(&next_id.to_le_bytes());
        message.extend_from_slice(&request_id.to_le_bytes());
        message.extend_from_slice(&op.to_le_bytes());
        message.extend_from_slice(&payload);
        next_id += 1;
        if stream.write_all(&message).await.is_err() {
            return;
        }
    }
}
