<?php
/**
 * cluster:// — a PHP stream wrapper over a mod_clusterstorage WebDAV space,
 * meant as a drop-in replacement for file:// (SPEC section 9).
 *
 *     require 'ClusterStorage.php';
 *     ClusterStorage\StreamWrapper::register('cluster', 'http://127.0.0.1:8080/dav/app');
 *     mkdir('cluster://uploads/2024', 0755, true);                    // MKCOL
 *     file_put_contents('cluster://uploads/2024/a.txt', $s);          // one streamed PUT
 *     foreach (scandir('cluster://uploads/2024') as $name) { ... }    // PROPFIND
 *     rename('cluster://uploads/2024', 'cluster://archive/2024');     // one MOVE
 *
 * What each call sends:
 *   - stat (is_dir, file_exists, filesize, ...): PROPFIND Depth 0;
 *     opendir/scandir: PROPFIND Depth 1; mkdir: MKCOL; rmdir/unlink: DELETE
 *     after a check of the type (and emptiness); rename: MOVE.
 *   - reads stream the GET's body; fseek() asks again with a Range.
 *   - writes: w/x stream one chunked PUT from fopen() on (refusals such as
 *     409, 412, 423 or 507 fail fopen() itself); a and FILE_APPEND stream
 *     one atomic append (PATCH, X-Update-Range: append); modes with '+', c
 *     and writes that seek work on a local spool (php://temp) and are
 *     stored with one PUT when flushed or closed.
 *   - flock(): WebDAV locks (shared/exclusive), cluster-wide; a lock held
 *     by this process is named (If:) in its writes.
 * Nothing holds a whole file in memory. Needs only PHP >= 7.4 (posix is
 * used when present); no allow_url_fopen, no extension.
 * See README.md next to this file, including the differences from file://.
 */

namespace ClusterStorage;

/** @internal One HTTP/1.1 answer, its body read on demand. */
final class Response
{
    public $status = 0;
    public $reason = '';
    /** @var array<string,string> lower-case names */
    public $headers = [];
    /** @var resource|null */
    private $sock;
    private $key;
    /** @var int|null bytes left of a Content-Length body; null: chunked or until close */
    private $left = null;
    private $chunked = false;
    private $chunkLeft = 0;
    private $done = false;
    private $keep = true;
    /** @var bool the connection ended before the body did */
    public $broken = false;
    public $timedOut = false;

    public function __construct($sock, $key, $method)
    {
        $this->sock = $sock;
        $this->key = $key;
        $this->readHead();
        if ($this->status === 0) {
            return;
        }
        $this->keep = !isset($this->headers['connection'])
            || stripos($this->headers['connection'], 'close') === false;
        if ($method === 'HEAD' || $this->status === 204 || $this->status === 304) {
            $this->done = true;
        } elseif (isset($this->headers['transfer-encoding'])
                  && stripos($this->headers['transfer-encoding'], 'chunked') !== false) {
            $this->chunked = true;
        } elseif (isset($this->headers['content-length'])) {
            $this->left = (int)$this->headers['content-length'];
            $this->done = $this->left === 0;
        } else {
            $this->keep = false;
        }
        if ($this->done) {
            $this->release();
        }
    }

    private function readHead()
    {
        for (;;) {
            $line = fgets($this->sock);
            if ($line === false) {
                $this->timedOut = !empty(stream_get_meta_data($this->sock)['timed_out']);
                $this->status = 0;
                return;
            }
            if (preg_match('#^HTTP/\d\.\d (\d{3})(?: (.*))?#', rtrim($line, "\r\n"), $m)) {
                $this->status = (int)$m[1];
                $this->reason = isset($m[2]) ? trim($m[2]) : '';
                $this->headers = [];
            }
            while (($line = fgets($this->sock)) !== false && ($line = rtrim($line, "\r\n")) !== '') {
                if (($p = strpos($line, ':')) !== false) {
                    $this->headers[strtolower(trim(substr($line, 0, $p)))] = trim(substr($line, $p + 1));
                }
            }
            if ($line === false) {
                $this->status = 0;
                return;
            }
            if ($this->status >= 200 || $this->status === 0) {
                return;
            }
            // 1xx: read the next answer, unless a 100 Continue was waited for
            if ($this->status === 100 && Http::$waiting100) {
                return;
            }
        }
    }

    public function header($name)
    {
        $name = strtolower($name);
        return isset($this->headers[$name]) ? $this->headers[$name] : null;
    }

    /** The socket now belongs to someone else (a 100 Continue's upload). */
    public function detach()
    {
        $this->sock = null;
        $this->done = true;
    }

    public function eof()
    {
        return $this->done;
    }

    /** Up to $n bytes of the body ('' at its end). */
    public function read($n)
    {
        if ($this->done || $n <= 0) {
            return '';
        }
        if ($this->chunked) {
            if ($this->chunkLeft === 0) {
                $line = fgets($this->sock);
                if ($line === false) {
                    return $this->cut();
                }
                $this->chunkLeft = hexdec(trim(explode(';', $line)[0]));
                if ($this->chunkLeft === 0) {
                    while (($l = fgets($this->sock)) !== false && rtrim($l, "\r\n") !== '') {
                    }
                    $this->done = true;
                    $this->release();
                    return '';
                }
            }
            $data = fread($this->sock, (int)min($n, $this->chunkLeft));
            if ($data === false || $data === '') {
                return $this->cut();
            }
            $this->chunkLeft -= strlen($data);
            if ($this->chunkLeft === 0) {
                fgets($this->sock);       // the CRLF after the chunk
            }
            return $data;
        }
        $want = $this->left === null ? $n : (int)min($n, $this->left);
        $data = fread($this->sock, $want);
        if ($data === false || $data === '') {
            if ($this->left === null && feof($this->sock)) {
                $this->done = true;
                $this->close();
                return '';
            }
            return $this->cut();
        }
        if ($this->left !== null) {
            $this->left -= strlen($data);
            if ($this->left === 0) {
                $this->done = true;
                $this->release();
            }
        }
        return $data;
    }

    public function body($max = 16777216)
    {
        $out = '';
        while (!$this->done && strlen($out) <= $max) {
            $d = $this->read(65536);
            if ($d === '' && !$this->done) {
                break;
            }
            $out .= $d;
        }
        return $out;
    }

    private function cut()
    {
        $this->timedOut = $this->sock && !empty(stream_get_meta_data($this->sock)['timed_out']);
        $this->broken = true;
        $this->done = true;
        $this->close();
        return '';
    }

    /** Done with it: keep the connection for the next request if it can be. */
    public function release()
    {
        if ($this->sock === null) {
            return;
        }
        if ($this->done && $this->keep && !$this->broken) {
            Http::idle($this->key, $this->sock);
            $this->sock = null;
        } else {
            $this->close();
        }
    }

    public function close()
    {
        if ($this->sock) {
            fclose($this->sock);
            $this->sock = null;
        }
        $this->done = true;
    }

    public function __destruct()
    {
        $this->release();
    }
}

/** @internal A request whose body is being sent (chunked). */
final class Upload
{
    private $sock;
    private $key;
    private $method;
    public $sent = 0;
    public $error = null;

    public function __construct($sock, $key, $method)
    {
        $this->sock = $sock;
        $this->key = $key;
        $this->method = $method;
    }

    public function write($data)
    {
        if ($this->sock === null) {
            return false;
        }
        if ($data === '') {
            return true;
        }
        if (!Http::writeAll($this->sock, dechex(strlen($data)) . "\r\n" . $data . "\r\n")) {
            $this->error = 'the connection broke while sending';
            return false;
        }
        $this->sent += strlen($data);
        return true;
    }

    /** Send the end of the body and read the answer. */
    public function finish()
    {
        if ($this->sock === null) {
            return null;
        }
        $sock = $this->sock;
        $this->sock = null;
        if (!Http::writeAll($sock, "0\r\n\r\n")) {
            // the server may have answered early and closed: read it anyway
        }
        $r = new Response($sock, $this->key, $this->method);
        if ($r->status === 0) {
            $r->close();
            return null;
        }
        return $r;
    }

    /** Give up: the server sees a body that never ends and stores nothing. */
    public function abort()
    {
        if ($this->sock) {
            fclose($this->sock);
            $this->sock = null;
        }
    }

    public function __destruct()
    {
        $this->abort();
    }
}

/** @internal The HTTP client: kept-alive connections, timeouts, failover between nodes. */
final class Http
{
    /** @var array<string, resource[]> */
    private static $pool = [];
    /** @var array<string, float> base => time until which it is skipped */
    private static $down = [];
    public static $waiting100 = false;
    private static $pid = 0;

    public static function idle($key, $sock)
    {
        if (self::$pid !== getmypid()) {
            self::$pool = [];
            self::$pid = getmypid();
        }
        if (!isset(self::$pool[$key]) || count(self::$pool[$key]) < 4) {
            self::$pool[$key][] = $sock;
        } else {
            fclose($sock);
        }
    }

    public static function writeAll($sock, $data)
    {
        while ($data !== '') {
            $n = @fwrite($sock, $data);
            if ($n === false || $n === 0) {
                return false;
            }
            $data = (string)substr($data, $n);
        }
        return true;
    }

    /** The bases of $cfg in the order to try: those not marked down first. */
    private static function order(array $cfg)
    {
        $now = microtime(true);
        $up = $down = [];
        foreach ($cfg['bases'] as $b) {
            if (isset(self::$down[$b['base']]) && self::$down[$b['base']] > $now) {
                $down[] = $b;
            } else {
                $up[] = $b;
            }
        }
        return array_merge($up, $down);
    }

    private static function markDown(array $cfg, array $b)
    {
        if (count($cfg['bases']) > 1) {
            self::$down[$b['base']] = microtime(true) + $cfg['down_time'];
        }
    }

    /** [socket, reused] or [null, error]. */
    private static function connect(array $cfg, array $b, $fresh)
    {
        $key = $b['key'];
        if (self::$pid !== getmypid()) {
            // a forked child: the parent's connections are not its own
            self::$pool = [];
            self::$pid = getmypid();
        }
        while (!$fresh && !empty(self::$pool[$key])) {
            $s = array_pop(self::$pool[$key]);
            $r = [$s];
            $w = $e = null;
            if (@stream_select($r, $w, $e, 0) === 0) {   // not closed by the server
                stream_set_timeout($s, (int)$cfg['timeout'], (int)(fmod($cfg['timeout'], 1) * 1e6));
                return [$s, true];
            }
            fclose($s);
        }
        $ctx = stream_context_create(['ssl' => $cfg['ssl'] + ['peer_name' => $b['host']]]);
        $errno = 0;
        $errstr = '';
        $s = @stream_socket_client($b['target'], $errno, $errstr, $cfg['connect_timeout'],
                                   STREAM_CLIENT_CONNECT, $ctx);
        if (!$s) {
            return [null, $errstr !== '' ? $errstr : "error $errno"];
        }
        stream_set_timeout($s, (int)$cfg['timeout'], (int)(fmod($cfg['timeout'], 1) * 1e6));
        return [$s, false];
    }

    private static function head(array $cfg, array $b, $method, $path, array $headers)
    {
        $lines = ["$method " . $b['path'] . $path . ' HTTP/1.1',
                  'Host: ' . $b['hostport'],
                  'User-Agent: ClusterStorage-PHP/' . StreamWrapper::VERSION];
        foreach ($headers as $i => $h) {
            if (strncmp($h, 'Destination: {BASE}', 19) === 0) {
                $headers[$i] = 'Destination: ' . $b['base'] . substr($h, 19);   // the node asked
            }
        }
        return implode("\r\n", array_merge($lines, $b['auth'], $cfg['headers'], $headers)) . "\r\n\r\n";
    }

    /**
     * One request with its whole body ($body: null, a string, or [stream, length]).
     * Returns [Response|null, error]. Retries on another node (or a fresh
     * connection) only where the request cannot have been carried out.
     */
    public static function request(array $cfg, $method, $path, array $headers = [], $body = null)
    {
        $idem = in_array($method, ['GET', 'HEAD', 'PROPFIND', 'OPTIONS'], true);
        $err = 'no node configured';
        foreach (self::order($cfg) as $b) {
            for ($try = 0; $try < 2; $try++) {
                list($s, $reused) = self::connect($cfg, $b, $try > 0);
                if (!$s) {
                    self::markDown($cfg, $b);
                    $err = "cannot reach {$b['base']}: $reused";
                    break;              // next node
                }
                $len = $body === null ? 0 : (is_string($body) ? strlen($body) : $body[1]);
                $h = $headers;
                if ($body !== null || in_array($method, ['PUT', 'PATCH', 'PROPFIND', 'LOCK', 'PROPPATCH'], true)) {
                    $h[] = "Content-Length: $len";
                }
                $ok = self::writeAll($s, self::head($cfg, $b, $method, $path, $h));
                $start = is_array($body) ? ftell($body[0]) : 0;
                if ($ok && is_string($body) && $body !== '') {
                    $ok = self::writeAll($s, $body);
                } elseif ($ok && is_array($body)) {
                    $left = $len;
                    while ($ok && $left > 0) {
                        $c = fread($body[0], (int)min(65536, $left));
                        if ($c === false || $c === '') {
                            break;
                        }
                        $ok = self::writeAll($s, $c);
                        $left -= strlen($c);
                    }
                }
                $r = new Response($s, $b['key'], $method);
                if ($r->status !== 0) {
                    return [$r, null];
                }
                $r->close();
                if ($reused && !$r->timedOut) {
                    // an idle connection the server had dropped: nothing was done
                    if (is_array($body)) {
                        fseek($body[0], $start);
                    }
                    continue;
                }
                $err = $r->timedOut ? "no answer from {$b['base']} within {$cfg['timeout']} s"
                                    : "the connection to {$b['base']} closed without an answer";
                self::markDown($cfg, $b);
                if (!$idem) {
                    return [null, $err];
                }
                break;
            }
        }
        return [null, $err];
    }

    /**
     * Start a request whose body follows in chunks; waits for the server's
     * 100 Continue, so that a refusal comes now. Returns [Upload|null,
     * Response|null (a refusal), error].
     */
    public static function upload(array $cfg, $method, $path, array $headers)
    {
        $err = 'no node configured';
        foreach (self::order($cfg) as $b) {
            for ($try = 0; $try < 2; $try++) {
                list($s, $reused) = self::connect($cfg, $b, $try > 0);
                if (!$s) {
                    self::markDown($cfg, $b);
                    $err = "cannot reach {$b['base']}: $reused";
                    break;
                }
                $h = array_merge($headers, ['Transfer-Encoding: chunked', 'Expect: 100-continue']);
                self::writeAll($s, self::head($cfg, $b, $method, $path, $h));
                self::$waiting100 = true;
                try {
                    $r = new Response($s, $b['key'], $method);
                } finally {
                    self::$waiting100 = false;
                }
                if ($r->status === 100) {
                    $r->detach();
                    return [new Upload($s, $b['key'], $method), null, null];
                }
                if ($r->status !== 0) {
                    return [null, $r, null];
                }
                $r->close();
                if ($reused && !$r->timedOut) {
                    continue;
                }
                $err = $r->timedOut ? "no answer from {$b['base']} within {$cfg['timeout']} s"
                                    : "the connection to {$b['base']} closed without an answer";
                self::markDown($cfg, $b);
                // nothing was stored without a body: the next node may take it
                break;
            }
        }
        return [null, null, $err];
    }
}

/** @internal The few DAV: elements of a multistatus, without the xml extension. */
final class Multistatus
{
    /**
     * [href => ['dir' => bool, 'size' => int, 'mtime' => int, 'etag' => ?string]]
     * for the responses with a 200 propstat.
     */
    public static function parse($xml)
    {
        $out = [];
        if (!preg_match_all('#<(?:[A-Za-z0-9_.-]+:)?response\b[^>]*>(.*?)</(?:[A-Za-z0-9_.-]+:)?response>#s',
                            $xml, $resp)) {
            return $out;
        }
        foreach ($resp[1] as $r) {
            if (!preg_match('#<(?:[\w.-]+:)?href\b[^>]*>([^<]*)</#', $r, $m)) {
                continue;
            }
            $href = html_entity_decode(trim($m[1]), ENT_QUOTES | ENT_XML1, 'UTF-8');
            $e = ['dir' => false, 'size' => 0, 'mtime' => 0, 'etag' => null];
            // only the props of a 200 propstat count
            if (preg_match_all('#<(?:[\w.-]+:)?propstat\b[^>]*>(.*?)</(?:[\w.-]+:)?propstat>#s', $r, $ps)) {
                $r = '';
                foreach ($ps[1] as $p) {
                    if (preg_match('#<(?:[\w.-]+:)?status\b[^>]*>[^<]* 200 #', $p)) {
                        $r .= $p;
                    }
                }
            }
            $e['dir'] = (bool)preg_match('#<(?:[\w.-]+:)?resourcetype\b[^>]*>\s*<(?:[\w.-]+:)?collection\b#', $r);
            if (preg_match('#<(?:[\w.-]+:)?getcontentlength\b[^>]*>\s*(\d+)#', $r, $m)) {
                $e['size'] = (int)$m[1];
            }
            if (preg_match('#<(?:[\w.-]+:)?getlastmodified\b[^>]*>([^<]+)<#', $r, $m)) {
                $t = strtotime(trim($m[1]));
                $e['mtime'] = $t === false ? 0 : $t;
            }
            if (preg_match('#<(?:[\w.-]+:)?getetag\b[^>]*>([^<]+)<#', $r, $m)) {
                $e['etag'] = html_entity_decode(trim($m[1]), ENT_QUOTES | ENT_XML1, 'UTF-8');
            }
            $out[$href] = $e;
        }
        return $out;
    }
}

final class StreamWrapper
{
    const VERSION = '2.0';

    /** @var resource|null set by PHP for every operation */
    public $context;

    /** @var array<string, array> scheme => configuration */
    private static $config = [];
    private static $lastError = null;
    /** @var array<string, array<string,string>> path key => [token => scope] held by this process */
    private static $held = [];

    private $url = '';
    /** @var string the path under the base, each segment percent-encoded, starting with '/' */
    private $path = '';
    private $cfg = [];
    /** r, w, a, x, c, each maybe with + */
    private $mode = '';
    private $plus = false;
    /** @var int position of the stream */
    private $pos = 0;

    // read state
    /** @var Response|null */
    private $resp = null;
    private $size = null;
    private $etag = null;
    private $mtime = 0;
    /** @var int offset the current response's next byte is at */
    private $rpos = 0;

    // write state: 'stream' (chunked PUT or append under way) or 'spool'
    private $how = null;
    /** @var Upload|null */
    private $up = null;
    /** @var resource|null local spool of the whole content */
    private $spool = null;
    private $loaded = false;
    private $dirty = false;
    /** @var resource|null what an a+ stream appended, sent as one append */
    private $appended = null;
    private $writeError = null;
    /** the request the next write starts when none is under way */
    private $nextMethod = 'PATCH';
    private $nextPre = [];
    /** @var int bytes that earlier uploads of this stream stored (before an fflush) */
    private $done = 0;
    /** @var Response|null answer of the last store */
    private $stored = null;

    // lock held by this stream
    private $lockToken = null;
    private $lockScope = null;

    // directory listing
    private $names = null;
    /** @var bool the path ended with a slash */
    private $slash = false;
    private $namePos = 0;

    // ------------------------------------------------------------ public API

    /**
     * Register SCHEME:// as a view of the DAV collection BASEURL (a
     * 'DAV clusterstorage' location, e.g. 'http://127.0.0.1:8080/dav/app'),
     * or of the same collection on several nodes (an array of such URLs: a
     * node that does not answer is skipped for 'down_time' seconds).
     * Options:
     *   timeout          float  seconds one call waits for a node's answer (10)
     *   connect_timeout  float  seconds a connect may take (2)
     *   down_time        float  seconds a node that failed is tried last (5)
     *   lock_timeout     int    seconds a flock() lives without this process (60);
     *                          every call of this process renews its locks
     *   lock_wait        float  seconds a blocking flock() waits at most (300)
     *   headers          array  extra request headers, ['Authorization' => '...']
     *   ssl              array  ssl context options for https:// bases
     *   maxmemory        int    bytes a spool keeps in memory before it uses a
     *                          temporary file (2 MiB)
     * Registering the same scheme again replaces its configuration.
     */
    public static function register($scheme, $baseUrl, array $options = [])
    {
        if (!preg_match('/^[A-Za-z][A-Za-z0-9+.-]+$/', $scheme)) {
            throw new \InvalidArgumentException("invalid scheme name '$scheme'");
        }
        $bases = [];
        foreach ((array)$baseUrl as $u) {
            $parts = parse_url($u);
            if ($parts === false || !isset($parts['scheme'], $parts['host'])
                || !in_array(strtolower($parts['scheme']), ['http', 'https'], true)) {
                throw new \InvalidArgumentException("base URL must be http:// or https://, got '$u'");
            }
            $https = strtolower($parts['scheme']) === 'https';
            $port = isset($parts['port']) ? $parts['port'] : ($https ? 443 : 80);
            $host = trim($parts['host'], '[]');
            $auth = [];
            if (isset($parts['user'])) {
                $auth[] = 'Authorization: Basic ' . base64_encode(rawurldecode($parts['user']) . ':'
                    . (isset($parts['pass']) ? rawurldecode($parts['pass']) : ''));
            }
            $bases[] = [
                'base' => rtrim($u, '/'),
                'host' => $host,
                'hostport' => $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : ''),
                'target' => ($https ? 'ssl://' : 'tcp://') . $parts['host'] . ':' . $port,
                'key' => "$scheme|{$parts['host']}:$port",
                'path' => rtrim(isset($parts['path']) ? $parts['path'] : '', '/'),
                'auth' => $auth,
            ];
        }
        if (!$bases) {
            throw new \InvalidArgumentException('no base URL given');
        }
        $key = strtolower($scheme);
        if (in_array($key, array_map('strtolower', stream_get_wrappers()), true)) {
            if (!isset(self::$config[$key])) {
                throw new \RuntimeException("the scheme '$scheme' is already registered by another wrapper");
            }
            stream_wrapper_unregister($scheme);
        }
        $o = $options + ['timeout' => 10.0, 'connect_timeout' => 2.0, 'down_time' => 5.0,
                         'lock_timeout' => 60, 'lock_wait' => 300.0, 'headers' => [],
                         'ssl' => [], 'maxmemory' => 2 * 1024 * 1024];
        self::$config[$key] = [
            'scheme' => $scheme,
            'bases' => $bases,
            'timeout' => max(0.1, (float)$o['timeout']),
            'connect_timeout' => max(0.1, (float)$o['connect_timeout']),
            'down_time' => (float)$o['down_time'],
            'lock_timeout' => max(1, (int)$o['lock_timeout']),
            'lock_wait' => (float)$o['lock_wait'],
            'headers' => self::headerList($o['headers']),
            'ssl' => (array)$o['ssl'],
            'maxmemory' => (int)$o['maxmemory'],
        ];
        // Not STREAM_IS_URL: include/require of stored PHP files works
        // (allow_url_include is for remote code, and this is the app's own
        // storage), and allow_url_fopen does not apply.
        if (!stream_wrapper_register($scheme, self::class, 0)) {
            unset(self::$config[$key]);
            throw new \RuntimeException("could not register the scheme '$scheme'");
        }
    }

    public static function unregister($scheme)
    {
        $key = strtolower($scheme);
        if (!isset(self::$config[$key])) {
            return false;
        }
        unset(self::$config[$key]);
        return stream_wrapper_unregister($scheme);
    }

    /** The message of the last error of any cluster:// operation, or null. */
    public static function lastError()
    {
        return self::$lastError;
    }

    /** The http(s):// URL a cluster:// URL maps to (on the first node). */
    public static function httpUrl($url)
    {
        $w = new self();
        return $w->resolve($url) ? $w->cfg['bases'][0]['base'] . $w->path : null;
    }

    /**
     * glob() for cluster:// patterns (PHP's glob() never asks a stream
     * wrapper): the matching paths, sorted; GLOB_ONLYDIR and GLOB_MARK are
     * honoured, wildcards only in the last segment.
     */
    public static function glob($pattern, $flags = 0)
    {
        $dir = dirname($pattern);
        $names = @scandir($dir);
        if ($names === false) {
            return [];
        }
        $out = [];
        foreach ($names as $n) {
            if ($n === '.' || $n === '..' || !fnmatch(basename($pattern), $n, FNM_PERIOD)) {
                continue;
            }
            $p = "$dir/$n";
            $isDir = ($flags & (GLOB_ONLYDIR | GLOB_MARK)) ? is_dir($p) : false;
            if (($flags & GLOB_ONLYDIR) && !$isDir) {
                continue;
            }
            $out[] = $p . (($flags & GLOB_MARK) && $isDir ? '/' : '');
        }
        return $out;
    }

    /** A response header of the last answer of this stream (GET, or the store). */
    public function header($name)
    {
        $r = $this->stored ?: $this->resp;
        if ($name !== null && strtolower($name) === 'etag' && $this->stored === null && $this->etag !== null) {
            return $this->etag;
        }
        return $r ? $r->header($name) : null;
    }

    /** X-ClusterStorage-Version of the file read, or of the last store. */
    public function version()
    {
        $v = $this->header('X-ClusterStorage-Version');
        return $v === null ? null : (int)$v;
    }

    public function etag()
    {
        return $this->header('ETag');
    }

    // ------------------------------------------------------ stream functions

    public function stream_open($path, $mode, $options, &$opened_path)
    {
        if (!$this->resolve($path, true)) {
            return $this->openFailed();
        }
        $m = str_replace(['b', 't'], '', $mode);
        if (!preg_match('/^[rwaxc]\+?$/', $m)) {
            $this->failText("invalid mode '$mode'");
            return $this->openFailed();
        }
        $this->mode = $m[0];
        $this->plus = strlen($m) > 1;
        $ok = $this->mode === 'r' && !$this->plus ? $this->openRead() : $this->openWrite();
        return $ok ? true : $this->openFailed();
    }

    public function stream_read($count)
    {
        if ($this->mode !== 'r' && !$this->plus) {
            trigger_error($this->caller() . "(): Read of $count bytes failed with errno=9 Bad file descriptor",
                          E_USER_NOTICE);
            return false;
        }
        $d = $this->readData($count);
        // like a file: the end shows once a read comes back short
        $this->atEnd = $d !== false && strlen($d) < $count;
        return $d;
    }

    /** @var bool the last read found the end */
    private $atEnd = false;

    private function readData($count)
    {
        if ($this->how === 'spool') {
            $this->load();
            fseek($this->spool, $this->pos);
            $d = fread($this->spool, $count);
            $this->pos += strlen((string)$d);
            return $d === false ? '' : $d;
        }
        if ($this->how === 'stream') {
            $this->toSpool();
            return $this->readData($count);
        }
        if ($this->size !== null && $this->pos >= $this->size) {
            return '';
        }
        if ($this->resp === null || $this->rpos !== $this->pos) {
            if (!$this->fetchFrom($this->pos)) {
                return false;
            }
        }
        $d = '';
        while (strlen($d) < $count && ($c = $this->resp->read($count - strlen($d))) !== '') {
            $d .= $c;         // a whole chunk unless at the end, as a file gives
        }
        if ($d === '' && $this->resp->broken) {
            $this->warn($this->resp->timedOut ? "read of {$this->url} timed out after {$this->pos} bytes"
                                               : "transfer of {$this->url} cut short after {$this->pos} bytes");
            return false;
        }
        $this->pos += strlen($d);
        $this->rpos = $this->pos;
        return $d;
    }

    public function stream_write($data)
    {
        if ($this->mode === 'r' && !$this->plus) {
            trigger_error($this->caller() . '(): Write of ' . strlen($data)
                          . ' bytes failed with errno=9 Bad file descriptor', E_USER_NOTICE);
            return false;
        }
        if ($this->writeError !== null) {
            return 0;
        }
        if ($this->how === 'stream') {
            if ($this->mode !== 'a' && $this->pos !== $this->done + ($this->up ? $this->up->sent : 0)) {
                $this->toSpool();
                return $this->stream_write($data);
            }
            if ($this->up === null && !$this->startUpload($this->nextMethod, $this->nextPre)) {
                $this->writeError = self::$lastError;
                return 0;           // after an fflush(): the rest is an append
            }
            if (!$this->up->write($data)) {
                $this->writeError = $this->up->error;
                $this->warn("write of {$this->url} failed: {$this->up->error}");
                $this->up->abort();
                return 0;
            }
            $this->pos += strlen($data);
            return strlen($data);
        }
        // spool
        if ($this->mode === 'c' && !$this->plus && $this->truncatedEmpty && $this->pos === 0
            && fstat($this->spool)['size'] === 0) {
            // file_put_contents(LOCK_EX): c, ftruncate(0), writes: one streamed PUT
            if ($this->startUpload('PUT')) {
                return $this->stream_write($data);
            }
            return 0;
        }
        $this->load();
        if ($this->mode === 'a') {
            fseek($this->spool, 0, SEEK_END);
            fwrite($this->appended, $data);
        } else {
            fseek($this->spool, 0, SEEK_END);
            for ($gap = $this->pos - ftell($this->spool); $gap > 0; $gap -= 65536) {
                fwrite($this->spool, str_repeat("\0", (int)min($gap, 65536)));  // a hole reads as zeros
            }
            fseek($this->spool, $this->pos);
        }
        $n = fwrite($this->spool, $data);
        $this->pos = ftell($this->spool);
        $this->dirty = true;
        return $n === false ? 0 : $n;
    }

    private $truncatedEmpty = false;

    public function stream_eof()
    {
        return $this->atEnd;
    }

    public function stream_tell()
    {
        return $this->pos;
    }

    public function stream_seek($offset, $whence = SEEK_SET)
    {
        if ($whence === SEEK_END) {
            $size = $this->currentSize();
            if ($size === null) {
                return false;
            }
            $offset += $size;
        } elseif ($whence === SEEK_CUR) {
            $offset += $this->pos;
        }
        if ($offset < 0) {
            return false;
        }
        $this->pos = (int)$offset;
        $this->atEnd = false;
        return true;
    }

    public function stream_truncate($size)
    {
        if ($this->mode === 'r' && !$this->plus || $size < 0) {
            return false;
        }
        if ($this->how === 'stream') {
            if ($this->mode !== 'a' && $size === $this->currentSize()) {
                return true;
            }
            $this->toSpool();
        }
        if ($size === 0 && !$this->loaded) {
            $this->loaded = true;        // nothing to fetch: it is empty now
            $this->truncatedEmpty = true;
            $this->dirty = true;
            $this->appendOnly = false;
            return true;
        }
        $this->load();
        if (!ftruncate($this->spool, $size)) {
            return false;
        }
        $this->dirty = true;
        $this->appendOnly = false;
        return true;
    }

    private $appendOnly = true;

    public function stream_flush()
    {
        if ($this->how === 'stream') {
            // what was written becomes visible; later writes are appended
            return $this->up === null || $this->finishUpload();
        }
        if ($this->how === 'spool' && $this->dirty) {
            return $this->storeSpool();
        }
        return true;
    }

    public function stream_close()
    {
        if ($this->how === 'stream' && $this->up === null && $this->nextMethod === 'PUT'
            && $this->writeError === null && $this->startUpload('PUT', $this->nextPre)) {
            $this->finishUpload();      // a 'w' that waited for its lock and wrote nothing
        } elseif ($this->how === 'stream' && $this->up !== null) {
            $this->finishUpload();
        } elseif ($this->how === 'spool' && $this->dirty) {
            $this->storeSpool();
        }
        if ($this->resp) {
            $this->resp->release();
            $this->resp = null;
        }
        if ($this->spool) {
            fclose($this->spool);
            $this->spool = null;
        }
        if ($this->appended) {
            fclose($this->appended);
            $this->appended = null;
        }
        $this->unlock();
    }

    public function stream_stat()
    {
        $size = $this->currentSize();
        return self::statArray($this->path, $size === null ? 0 : $size,
                               $this->mtime ?: time(), false);
    }

    public function stream_lock($operation)
    {
        $op = $operation & ~LOCK_NB;
        if ($op === 0) {
            return true;            // PHP asks whether locks are supported
        }
        if ($op === LOCK_UN) {
            return $this->unlock();
        }
        $scope = $op === LOCK_EX ? 'exclusive' : 'shared';
        if ($this->lockToken !== null) {
            if ($this->lockScope === $scope) {
                return true;
            }
            $this->unlock();        // flock converts; not atomically, like Linux
        }
        $deadline = microtime(true) + $this->cfg['lock_wait'];
        $waited = false;
        $pause = 0.01;
        for (;;) {
            list($r, $err) = $this->req('LOCK', ['Timeout: Second-' . $this->cfg['lock_timeout'], 'Depth: 0',
                                                 'Content-Type: application/xml'],
                '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:'
                . $scope . '/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>php pid '
                . getmypid() . '</D:owner></D:lockinfo>');
            if ($r && ($r->status === 200 || $r->status === 201)) {
                $r->body();
                if (!preg_match('/<?(opaquelocktoken:[^>\s]+)>?/', (string)$r->header('Lock-Token'), $m)) {
                    return false;
                }
                $this->lockToken = $m[1];
                $this->lockScope = $scope;
                self::$held[$this->path][$m[1]] = microtime(true);
                if ($this->how === null && $this->resp !== null && $this->pos === 0) {
                    $this->revalidate();   // read what the last holder left
                }
                return true;
            }
            $status = $r ? $r->status : 0;
            if ($r) {
                $r->body();
            }
            if ($status !== 423 || ($operation & LOCK_NB) || microtime(true) > $deadline) {
                if ($status === 423 && ($operation & LOCK_NB)) {
                    self::wouldBlock();
                } elseif ($status !== 423) {
                    $this->warn('flock(): ' . ($err !== null ? $err : $this->describe($r)));
                }
                return false;
            }
            $waited = true;
            usleep((int)($pause * 1e6));
            $pause = min(0.2, $pause * 1.5);
        }
    }

    public function stream_set_option($option, $arg1, $arg2)
    {
        return false;
    }

    public function stream_cast($cast_as)
    {
        return false;
    }

    public function stream_metadata($path, $option, $value)
    {
        if (!$this->resolve($path, true)) {
            return false;
        }
        $st = $this->propfind0();
        if ($st === null) {
            return false;
        }
        if ($option === STREAM_META_TOUCH) {
            // the time becomes the file's (X-OC-Mtime): on a file that is
            // there, a new version with the same bytes (an empty append)
            $t = is_array($value) && isset($value[0]) ? (int)$value[0] : time();
            if ($st !== false) {
                if ($st['dir'] || $st['mtime'] === $t) {
                    return true;
                }
                list($r, $err) = $this->req('PATCH', ['Content-Type: application/x-sabredav-partialupdate',
                                                      'X-Update-Range: append', "X-OC-Mtime: $t"], '');
                if ($r && in_array($r->status, [200, 201, 204], true)) {
                    $r->body();
                    return true;
                }
                return $this->warn("touch(): Unable to set the time of {$this->url}: " . $this->errorText($r, $err));
            }
            list($r, $err) = $this->req('PUT', ['If-None-Match: *', "X-OC-Mtime: $t"], '');
            if ($r && in_array($r->status, [200, 201, 204, 412], true)) {
                $r->body();
                return true;
            }
            $this->warn('touch(): Unable to create file ' . $this->url . ' because '
                        . $this->errorText($r, $err));
            return false;
        }
        if ($st === false) {
            $fn = [STREAM_META_OWNER_NAME => 'chown', STREAM_META_OWNER => 'chown',
                   STREAM_META_GROUP_NAME => 'chgrp', STREAM_META_GROUP => 'chgrp',
                   STREAM_META_ACCESS => 'chmod'][$option];
            $this->warn("$fn(): No such file or directory");
            return false;
        }
        return true;        // modes and owners are not stored (README)
    }

    // -------------------------------------------------- path functions

    public function url_stat($path, $flags)
    {
        if (!$this->resolve($path, !($flags & STREAM_URL_STAT_QUIET))) {
            return false;
        }
        $st = $this->propfind0(!($flags & STREAM_URL_STAT_QUIET));
        if ($st && $this->slash && !$st['dir']) {
            $st = false;      // "a.txt/": not a directory, so nothing there
        }
        if (!$st) {
            return false;     // PHP says "stat failed for ..." where file:// would
        }
        return self::statArray($this->path, $st['size'], $st['mtime'], $st['dir']);
    }

    public function unlink($path)
    {
        if (!$this->resolve($path, true)) {
            return false;
        }
        $st = $this->propfind0(true);
        if ($st === null) {
            return false;
        }
        if ($st === false || $st['dir']) {
            return $this->warn("unlink({$this->url}): " . ($st ? 'Is a directory' : 'No such file or directory'));
        }
        list($r, $err) = $this->req('DELETE');
        if ($r && ($r->status === 204 || $r->status === 200)) {
            $r->body();
            return true;
        }
        return $this->warn("unlink({$this->url}): " . $this->errorText($r, $err));
    }

    public function rename($from, $to)
    {
        $dst = new self();
        $dst->context = $this->context;
        if (!$this->resolve($from, true) || !$dst->resolve($to, true)) {
            return false;
        }
        $what = "rename({$from},{$to}): ";
        $src = $this->propfind0(true);
        if ($src === null) {
            return false;
        }
        if ($src === false) {
            return $this->warn($what . 'No such file or directory');
        }
        if ($dst->path === $this->path) {
            return true;
        }
        $d = $dst->propfind0(true);
        if ($d === null) {
            return false;
        }
        if ($d !== false) {
            if ($d['dir'] && !$src['dir']) {
                return $this->warn($what . 'Is a directory');
            }
            if (!$d['dir'] && $src['dir']) {
                return $this->warn($what . 'Not a directory');
            }
            if ($d['dir'] && count($dst->listing()) > 0) {
                return $this->warn($what . 'Directory not empty');
            }
        }
        if ($src['dir'] && strpos($dst->path . '/', $this->path . '/') === 0) {
            return $this->warn($what . 'Invalid argument');
        }
        list($r, $err) = $this->req('MOVE', ['Destination: {BASE}' . $dst->path . ($src['dir'] ? '/' : ''),
                                             'Overwrite: T'], null, $src['dir'] ? '/' : '');
        if ($r && in_array($r->status, [201, 204], true)) {
            $r->body();
            return true;
        }
        if ($r && $r->status === 409) {
            return $this->warn($what . 'No such file or directory');
        }
        return $this->warn($what . $this->errorText($r, $err));
    }

    public function mkdir($path, $mode, $options)
    {
        if (!$this->resolve($path, true)) {
            return false;
        }
        if ($this->path === '') {
            return $this->warn('mkdir(): File exists');
        }
        $st = $this->propfind0(true);
        if ($st === null) {
            return false;
        }
        if ($st !== false) {
            return $this->warn('mkdir(): File exists');
        }
        list($r, $err) = $this->req('MKCOL', [], null, '/');
        if ($r && $r->status === 201) {
            $r->body();
            return true;
        }
        if ($r && $r->status === 409 && ($options & STREAM_MKDIR_RECURSIVE)) {
            $r->body();
            $parent = substr($this->url, 0, strrpos(rtrim($this->url, '/'), '/'));
            $p = new self();
            $p->context = $this->context;
            if ($p->resolve($parent) && $p->path !== '') {
                $pst = $p->propfind0(true);
                if ($pst === null) {
                    return false;
                }
                if ($pst !== false && !$pst['dir']) {
                    return $this->warn('mkdir(): Not a directory');
                }
                if ($pst === false && !$p->mkdir($parent, $mode, $options)) {
                    return false;
                }
            }
            list($r, $err) = $this->req('MKCOL', [], null, '/');
            if ($r && ($r->status === 201 || $r->status === 405)) {
                $r->body();
                return true;
            }
        }
        if ($r && $r->status === 409) {
            $parent = new self();
            $parent->context = $this->context;
            $pst = $parent->resolve(substr($this->url, 0, strrpos(rtrim($this->url, '/'), '/')))
                ? $parent->propfind0(false) : false;
            return $this->warn('mkdir(): ' . ($pst && !$pst['dir'] ? 'Not a directory' : 'No such file or directory'));
        }
        if ($r && $r->status === 405) {
            return $this->warn('mkdir(): File exists');
        }
        return $this->warn('mkdir(): ' . $this->errorText($r, $err));
    }

    public function rmdir($path, $options)
    {
        if (!$this->resolve($path, true)) {
            return false;
        }
        $st = $this->propfind0(true);
        if ($st === null) {
            return false;
        }
        if ($st === false || !$st['dir']) {
            return $this->warn("rmdir({$this->url}): " . ($st ? 'Not a directory' : 'No such file or directory'));
        }
        $names = $this->listing();
        if ($names === null) {
            return false;
        }
        if ($names || $this->path === '') {
            return $this->warn("rmdir({$this->url}): " . ($names ? 'Directory not empty' : 'Device or resource busy'));
        }
        list($r, $err) = $this->req('DELETE', [], null, '/');
        if ($r && ($r->status === 204 || $r->status === 200)) {
            $r->body();
            return true;
        }
        return $this->warn("rmdir({$this->url}): " . $this->errorText($r, $err));
    }

    // -------------------------------------------------- directory functions

    public function dir_opendir($path, $options)
    {
        if (!$this->resolve($path, true)) {
            return $this->openFailed();
        }
        $names = $this->listing(true);
        if ($names === null) {
            return $this->openFailed();
        }
        $this->names = array_merge(['.', '..'], $names);
        $this->namePos = 0;
        return true;
    }

    public function dir_readdir()
    {
        return $this->namePos < count($this->names) ? $this->names[$this->namePos++] : false;
    }

    public function dir_rewinddir()
    {
        $this->namePos = 0;
        return true;
    }

    public function dir_closedir()
    {
        $this->names = null;
        return true;
    }

    // ------------------------------------------------------------ internals

    private function openRead()
    {
        if (!$this->fetchFrom(0)) {
            return false;
        }
        $this->how = null;
        return true;
    }

    /** GET from $offset (a Range if not 0) of the version being read. */
    private function fetchFrom($offset)
    {
        if ($this->resp) {
            $this->resp->close();
            $this->resp = null;
        }
        $h = $offset > 0 ? ["Range: bytes=$offset-"] : [];
        list($r, $err) = $this->req('GET', $h);
        if ($r && $r->status === 416) {
            $r->body();
            $this->size = $offset;   // nothing there: reads return ''
            $this->rpos = -1;
            return true;
        }
        if (!$r || ($r->status !== 200 && $r->status !== 206)) {
            if ($r) {
                $r->close();
            }
            $this->failOpen($r, $err);
            return false;
        }
        if ($offset > 0 && $r->status === 200) {
            // no range support: skip to it
            for ($left = $offset; $left > 0;) {
                $d = $r->read((int)min(65536, $left));
                if ($d === '') {
                    break;
                }
                $left -= strlen($d);
            }
        }
        $this->resp = $r;
        $this->rpos = $offset;
        $this->etag = $r->header('ETag');
        $mt = $r->header('Last-Modified');
        $this->mtime = $mt ? (int)strtotime($mt) : 0;
        $total = null;
        if ($r->status === 206 && preg_match('#/(\d+)$#', (string)$r->header('Content-Range'), $m)) {
            $total = (int)$m[1];
        } elseif ($r->header('Content-Length') !== null) {
            $total = (int)$r->header('Content-Length');
        }
        $this->size = $total;
        return true;
    }

    /**
     * A read stream that just got its lock: its GET was sent before, so
     * ask again unless the file is still that version (304).
     */
    private function revalidate()
    {
        if ($this->etag === null) {
            return;
        }
        list($r) = $this->req('GET', ['If-None-Match: ' . $this->etag]);
        if ($r && $r->status === 304) {
            $r->release();
            return;
        }
        if ($r && $r->status === 200) {
            $this->resp->close();
            $this->resp = $r;
            $this->rpos = 0;
            $this->etag = $r->header('ETag');
            $mt = $r->header('Last-Modified');
            $this->mtime = $mt ? (int)strtotime($mt) : 0;
            $len = $r->header('Content-Length');
            $this->size = $len === null ? null : (int)$len;
            return;
        }
        if ($r) {
            $r->close();
        }
    }

    private function openWrite()
    {
        $st = $this->propfind0(true);
        if ($st === null) {
            return false;
        }
        if ($st !== false && $st['dir']) {
            self::$lastError = "{$this->url}: Is a directory";
            return $this->failText('Is a directory');
        }
        if ($st === false && $this->mode === 'r') {
            return $this->failText('No such file or directory');
        }
        if ($st !== false && $this->mode === 'x') {
            return $this->failText('File exists');
        }
        $this->size = $st ? $st['size'] : 0;
        $this->etag = $st ? $st['etag'] : null;
        $this->mtime = $st ? $st['mtime'] : 0;
        if (($this->mode === 'w' || $this->mode === 'x') && !$this->plus) {
            // one streamed PUT from now on
            $pre = $this->mode === 'x' ? ['If-None-Match: *'] : $this->contextPreconditions();
            return $this->startUpload('PUT', $pre, true);
        }
        if ($this->mode === 'a' && !$this->plus) {
            if ($st === false) {
                if (!$this->createEmpty()) {
                    return false;
                }
            }
            // created by another process whose PUT is not answered yet (its
            // 412 came first): a moment until every node knows the file
            for ($try = 0; $try < 20; $try++) {
                if (@$this->startUpload('PATCH', [], true)) {
                    return true;
                }
                if (strpos((string)self::$lastError, 'No such file') === false) {
                    break;
                }
                usleep(50000);
            }
            return $this->startUpload('PATCH', [], true);
        }
        // a spool: r+, w+, x+, a+, c, c+
        $this->how = 'spool';
        $this->spool = fopen('php://temp/maxmemory:' . $this->cfg['maxmemory'], 'w+b');
        if ($this->mode === 'a') {
            $this->appended = fopen('php://temp/maxmemory:' . $this->cfg['maxmemory'], 'w+b');
        }
        if ($st === false || $this->mode === 'w' || $this->mode === 'x') {
            $this->loaded = true;               // starts empty
            $this->truncatedEmpty = true;
            if ($st === false || $this->mode === 'w') {
                // file:// creates (or empties) the file now: so does this
                if (!$this->createEmpty($st === false ? ['If-None-Match: *'] : [])) {
                    return false;
                }
                $this->size = 0;
            }
        }
        return true;
    }

    /** PUT an empty file; the refusal fails the open. */
    private function createEmpty(array $pre = ['If-None-Match: *'])
    {
        $wait = null;
        do {
            list($r, $err) = $this->req('PUT', $pre, '');
        } while ($this->lockedWait($r, $wait));
        if ($r && in_array($r->status, [200, 201, 204], true)) {
            $r->body();
            $this->etag = $r->header('ETag');
            return true;
        }
        if ($r && $r->status === 412 && $pre === ['If-None-Match: *']) {
            $r->body();
            return true;          // created meanwhile by someone else
        }
        return $this->failOpen($r, $err);
    }

    private function contextPreconditions()
    {
        $out = [];
        $ctx = $this->context ? stream_context_get_options($this->context) : [];
        $opt = isset($ctx[$this->cfg['scheme']]) ? $ctx[$this->cfg['scheme']] : [];
        if (isset($opt['if_none_match'])) {
            $out[] = 'If-None-Match: ' . $opt['if_none_match'];
        }
        if (isset($opt['if_match'])) {
            $out[] = 'If-Match: ' . $opt['if_match'];
        }
        return $out;
    }

    private function startUpload($method, array $pre = [], $opening = false)
    {
        $this->nextMethod = $method;
        $this->nextPre = $pre;
        $h = $pre;
        if ($method === 'PATCH') {
            $h = ['Content-Type: application/x-sabredav-partialupdate', 'X-Update-Range: append'];
        } else {
            $h[] = 'Content-Type: application/octet-stream';
        }
        $wait = null;
        do {
            list($up, $r, $err) = Http::upload($this->cfg, $method, $this->path, array_merge($h, $this->ifHeader()));
        } while (!$up && !$opening && $this->lockedWait($r, $wait));
        if (!$up) {
            if ($r) {
                $r->body();
            }
            if ($r && $r->status === 412 && in_array('If-None-Match: *', $pre, true)) {
                return $this->failText('File exists');
            }
            if ($r && $r->status === 423 && $opening) {
                // locked by another process: open as file:// would; the
                // store starts at the first write, after this one's flock()
                $this->how = 'stream';
                $this->up = null;
                return true;
            }
            return $this->failOpen($r, $err);
        }
        $this->how = 'stream';
        $this->up = $up;
        if ($this->spool) {
            fclose($this->spool);
            $this->spool = null;
        }
        return true;
    }

    /**
     * A store refused with 423 (another process holds a flock() on the
     * file): true after a pause, to try again, until lock_wait is over.
     * A write waits for the lock to go, as a local write never fails.
     */
    private function lockedWait($r, &$wait)
    {
        if (!$r || $r->status !== 423) {
            return false;
        }
        $r->body();
        if ($wait === null) {
            $wait = [microtime(true) + $this->cfg['lock_wait'], 0.005];
        }
        if (microtime(true) > $wait[0]) {
            return false;
        }
        usleep((int)($wait[1] * 1e6));
        $wait[1] = min(0.2, $wait[1] * 1.5);
        return true;
    }

    /** End the streamed store; false (and a warning) if it was not stored. */
    private function finishUpload()
    {
        $up = $this->up;
        $this->up = null;
        if ($this->writeError !== null) {
            return false;
        }
        $this->done += $up->sent;
        $this->nextMethod = 'PATCH';     // what follows an fflush() is appended
        $this->nextPre = [];
        $r = $up->finish();
        if ($r && in_array($r->status, [200, 201, 204], true)) {
            $r->body();
            $this->stored = $r;
            $this->etag = $r->header('ETag');
            return true;
        }
        if ($r) {
            $r->body();
        }
        return $this->warn("fclose(): storing {$this->url} failed: " . $this->errorText($r, 'no answer'));
    }

    /** A streamed store that must seek or read: store what was sent, go on with a spool. */
    private function toSpool()
    {
        if ($this->how === 'stream') {
            $pos = $this->pos;
            if ($this->up !== null) {
                $this->finishUpload();
            }
            $this->spool = fopen('php://temp/maxmemory:' . $this->cfg['maxmemory'], 'w+b');
            if ($this->mode === 'a') {
                $this->appended = fopen('php://temp/maxmemory:' . $this->cfg['maxmemory'], 'w+b');
            }
            $this->how = 'spool';
            $this->loaded = false;
            $this->pos = $pos;
        }
    }

    /** Fill the spool with the current content, once. */
    private function load()
    {
        if ($this->loaded) {
            return true;
        }
        $this->loaded = true;
        if ($this->truncatedEmpty) {
            return true;
        }
        list($r, $err) = $this->req('GET');
        if ($r && $r->status === 200) {
            $this->etag = $r->header('ETag');
            while (($d = $r->read(65536)) !== '') {
                fwrite($this->spool, $d);
            }
            if (!$r->broken) {
                return true;
            }
        } elseif ($r && $r->status === 404) {
            $r->body();
            return true;
        }
        $this->writeError = $this->errorText($r, $err);
        return $this->warn("reading {$this->url} failed: {$this->writeError}");
    }

    private function storeSpool()
    {
        $this->dirty = false;
        if ($this->writeError !== null) {
            return false;
        }
        $wait = null;
        do {
            if ($this->mode === 'a' && $this->appended && $this->appendOnly) {
                $len = ftell($this->appended);
                rewind($this->appended);
                list($r, $err) = $this->req('PATCH', ['Content-Type: application/x-sabredav-partialupdate',
                                                      'X-Update-Range: append'], [$this->appended, $len]);
                fseek($this->appended, $len);
            } else {
                $this->load();
                $len = fstat($this->spool)['size'];
                rewind($this->spool);
                list($r, $err) = $this->req('PUT', ['Content-Type: application/octet-stream'], [$this->spool, $len]);
            }
        } while ($this->lockedWait($r, $wait));
        if ($this->appended && $r && $r->status < 300) {
            ftruncate($this->appended, 0);
            rewind($this->appended);
        }
        if ($r && in_array($r->status, [200, 201, 204], true)) {
            $r->body();
            $this->stored = $r;
            $this->etag = $r->header('ETag');
            return true;
        }
        return $this->warn("fclose(): storing {$this->url} failed: " . $this->errorText($r, $err));
    }

    private function currentSize()
    {
        if ($this->how === 'stream') {
            $n = $this->done + ($this->up ? $this->up->sent : 0);
            return $this->mode === 'a' ? $this->size + $n : $n;
        }
        if ($this->how === 'spool') {
            if (!$this->loaded) {
                return $this->truncatedEmpty ? 0 : $this->size;
            }
            return fstat($this->spool)['size'];
        }
        return $this->size;
    }

    private function unlock()
    {
        if ($this->lockToken === null) {
            return true;
        }
        $t = $this->lockToken;
        $this->lockToken = null;
        unset(self::$held[$this->path][$t]);
        if (empty(self::$held[$this->path])) {
            unset(self::$held[$this->path]);
        }
        list($r) = $this->req('UNLOCK', ["Lock-Token: <$t>"]);
        if ($r) {
            $r->body();
        }
        return true;
    }

    /** If: naming the locks this process holds on this path. */
    private function ifHeader()
    {
        if (empty(self::$held[$this->path])) {
            return [];
        }
        $l = '';
        foreach (self::$held[$this->path] as $t => $_) {
            $l .= "(<$t>)";
        }
        return ["If: $l"];
    }

    /** Renew this process's locks that are a third of their time old. */
    private function renewLocks()
    {
        static $busy = false;
        if ($busy || !self::$held) {
            return;
        }
        $busy = true;
        $now = microtime(true);
        foreach (self::$held as $path => $tokens) {
            foreach ($tokens as $t => $at) {
                if ($now - $at > $this->cfg['lock_timeout'] / 3) {
                    list($r) = Http::request($this->cfg, 'LOCK', $path,
                        ["If: (<$t>)", 'Timeout: Second-' . $this->cfg['lock_timeout']]);
                    if ($r) {
                        $r->body();
                    }
                    self::$held[$path][$t] = $now;
                }
            }
        }
        $busy = false;
    }

    /** One request on this path (plus $suffix, '/' for collections). */
    private function req($method, array $headers = [], $body = null, $suffix = '')
    {
        $this->renewLocks();
        if (in_array($method, ['PUT', 'PATCH', 'DELETE', 'MOVE', 'MKCOL', 'PROPPATCH'], true)) {
            $headers = array_merge($headers, $this->ifHeader());
        }
        if ($method === 'DELETE' || $method === 'MOVE') {
            // PHP keeps the last stat of any path; file:// clears it where
            // a name goes away (unlink, rename, rmdir), and so does this
            clearstatcache(true);
        }
        return Http::request($this->cfg, $method, $this->path . $suffix, $headers, $body);
    }

    /**
     * PROPFIND Depth 0: ['dir','size','mtime','etag'], false if there is
     * nothing there, null (and a warning if $report) if the cluster did not say.
     */
    private function propfind0($report = true)
    {
        if ($this->path === '') {
            return ['dir' => true, 'size' => 0, 'mtime' => 0, 'etag' => null];
        }
        list($r, $err) = $this->req('PROPFIND', ['Depth: 0', 'Content-Type: application/xml'], self::PROPS);
        if ($r && $r->status === 207) {
            $all = Multistatus::parse($r->body());
            $e = reset($all);
            return $e === false ? false : $e;
        }
        if ($r && $r->status === 404) {
            $r->body();
            return false;
        }
        if ($r) {
            $r->body();
        }
        if ($report) {
            $this->warn($this->caller() . "({$this->url}): " . $this->errorText($r, $err));
        }
        return null;
    }

    const PROPS = '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
        . '<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>';

    /** Names in this collection (sorted as the server gives them), null on failure. */
    private function listing($opening = false)
    {
        list($r, $err) = $this->req('PROPFIND', ['Depth: 1', 'Content-Type: application/xml'], self::PROPS, '/');
        if ($r && $r->status === 207) {
            $all = Multistatus::parse($r->body(1 << 30));
            $self = null;
            $names = [];
            foreach ($all as $href => $e) {
                $p = parse_url($href, PHP_URL_PATH);
                $p = rtrim($p === null || $p === false ? $href : $p, '/');
                $b = rtrim($this->cfg['bases'][0]['path'] . $this->path, '/');
                if (rawurldecode($p) === rawurldecode($b)) {
                    $self = $e;
                    continue;
                }
                $names[] = rawurldecode(substr($p, strrpos($p, '/') + 1));
            }
            if ($self !== null && !$self['dir'] || ($self === null && count($all) === 1)) {
                $this->failText('Not a directory', 'Failed to open directory');
                self::setErrno(20);
                return null;
            }
            return $names;
        }
        if ($r) {
            $r->body();
        }
        if ($r && $r->status === 404) {
            $this->failText('No such file or directory', $opening ? 'Failed to open directory' : null);
            self::setErrno(2);
            return null;
        }
        $this->failText($this->errorText($r, $err), $opening ? 'Failed to open directory' : null);
        return null;
    }

    /** Map a cluster:// URL; false (and a warning if $report) if it is not ours. */
    private function resolve($url, $report = false)
    {
        $this->url = $url;
        $p = strpos($url, '://');
        $scheme = $p === false ? '' : strtolower(substr($url, 0, $p));
        if (!isset(self::$config[$scheme])) {
            return $report ? $this->warn("$url: scheme not registered with " . self::class . '::register()') : false;
        }
        $this->cfg = self::$config[$scheme];
        $ctx = $this->context ? stream_context_get_options($this->context) : [];
        $opt = isset($ctx[$this->cfg['scheme']]) ? $ctx[$this->cfg['scheme']] : [];
        foreach (['timeout', 'connect_timeout'] as $k) {
            if (isset($opt[$k])) {
                $this->cfg[$k] = (float)$opt[$k];
            }
        }
        if (isset($opt['headers'])) {
            $this->cfg['headers'] = array_merge($this->cfg['headers'], self::headerList($opt['headers']));
        }
        $path = substr($url, $p + 3);
        if (strpos($path, "\0") !== false) {
            return $report ? $this->warn("$url: invalid path") : false;
        }
        // . and .. resolved, repeated slashes folded, as a file system does
        $segs = [];
        foreach (explode('/', $path) as $s) {
            if ($s === '' || $s === '.') {
                continue;
            }
            if ($s === '..') {
                array_pop($segs);
                continue;
            }
            $segs[] = rawurlencode($s);
        }
        $this->path = $segs ? '/' . implode('/', $segs) : '';
        $this->slash = $segs && substr($path, -1) === '/';
        return true;
    }

    private function caller()
    {
        foreach (debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS) as $f) {
            if (!isset($f['class'])) {
                return $f['function'];
            }
            if (strpos($f['class'], __NAMESPACE__ . '\\') !== 0) {
                return $f['class'] . '::' . $f['function'];
            }
        }
        return 'stat';
    }

    /** An error of an open: "fopen(URL): Failed to open stream: TEXT". */
    private function failText($text, $what = 'Failed to open stream')
    {
        $fn = $this->caller();
        $msg = $what !== null ? "$fn({$this->url}): $what: $text" : "$fn({$this->url}): $text";
        return $this->warn($msg);
    }

    private function failOpen($r, $err)
    {
        return $this->failText($this->errorText($r, $err));
    }

    /** The text of a failure: a file system's where one applies. */
    private function errorText($r, $err)
    {
        if (!$r) {
            return $err !== null ? $err : 'no answer';
        }
        switch ($r->status) {
            case 404: return 'No such file or directory';
            case 409: return 'No such file or directory';
            case 403: return 'Permission denied (HTTP 403)';
            case 423: return 'Resource temporarily unavailable (HTTP 423 Locked)';
            case 507: return 'No space left on device (HTTP 507)';
            case 412: return 'File exists or was changed (HTTP 412)';
        }
        return $this->describe($r);
    }

    private function describe($r)
    {
        if (!$r) {
            return 'no answer';
        }
        $s = "HTTP {$r->status}" . ($r->reason !== '' ? " {$r->reason}" : '');
        if ($r->status === 503 && ($ra = $r->header('Retry-After')) !== null) {
            $s .= " (retry after $ra s)";
        } elseif ($r->status === 405) {
            $s .= ' (not a DAV clusterstorage space?)';
        }
        return $s;
    }

    /** Record and raise a warning (E_USER_WARNING: all userland can raise); false. */
    private function warn($message)
    {
        self::$lastError = $message;
        trigger_error($message, E_USER_WARNING);
        return false;
    }

    /**
     * An open that failed and said why: PHP adds its own generic warning
     * ('"...::stream_open" call failed'); that one is dropped, once.
     */
    private function openFailed()
    {
        $prev = null;
        $prev = set_error_handler(function ($no, $msg, $file = '', $line = 0) use (&$prev) {
            if (strpos($msg, self::class . '::') !== false && strpos($msg, 'call failed') !== false) {
                restore_error_handler();
                return true;
            }
            if ($prev) {
                return call_user_func($prev, $no, $msg, $file, $line);
            }
            return false;
        });
        return false;
    }

    /**
     * Leave errno at ENOENT (2) or ENOTDIR (20), which scandir() prints
     * after a failed opendir, by a system call that fails that way.
     */
    private static function setErrno($errno)
    {
        clearstatcache(true, __FILE__);
        @lstat($errno === 20 ? __FILE__ . '/x' : __DIR__ . '/.cluster-storage-no-such-file');
        clearstatcache(true, __FILE__);
    }

    /** Set errno to EWOULDBLOCK, which flock() reads for $wouldblock. */
    private static function wouldBlock()
    {
        static $a = null, $b = null;
        if ($a === null) {
            $f = tempnam(sys_get_temp_dir(), 'csflock');
            $a = fopen($f, 'r');
            $b = fopen($f, 'r');
            unlink($f);
            flock($a, LOCK_EX);
        }
        flock($b, LOCK_EX | LOCK_NB);
    }

    private static function headerList($headers)
    {
        $out = [];
        foreach ((array)$headers as $k => $v) {
            $line = is_int($k) ? (string)$v : "$k: $v";
            if (preg_match('/[\r\n]/', $line)) {
                throw new \InvalidArgumentException('header contains a line break');
            }
            $out[] = $line;
        }
        return $out;
    }

    private static function statArray($path, $size, $mtime, $dir)
    {
        $uid = function_exists('posix_getuid') ? posix_getuid() : getmyuid();
        $gid = function_exists('posix_getgid') ? posix_getgid() : getmygid();
        $st = [
            'dev' => 0, 'ino' => crc32($path) & 0x7fffffff, 'mode' => $dir ? 040755 : 0100644,
            'nlink' => $dir ? 2 : 1, 'uid' => $uid, 'gid' => $gid, 'rdev' => 0,
            'size' => $dir ? 4096 : (int)$size, 'atime' => $mtime, 'mtime' => $mtime,
            'ctime' => $mtime, 'blksize' => 4096,
            'blocks' => $dir ? 8 : (int)(ceil($size / 4096) * 8),
        ];
        return array_merge(array_values($st), $st);
    }
}
