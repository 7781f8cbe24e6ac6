<?php
/**
 * cluster:// — a PHP stream wrapper for mod_clusterstorage.
 *
 *     require 'ClusterStorage.php';
 *     ClusterStorage\StreamWrapper::register('cluster', 'http://127.0.0.1:8080/files');
 *     file_put_contents('cluster://reports/2024.csv', $csv);   // PUT /files/reports/2024.csv
 *     echo file_get_contents('cluster://reports/2024.csv');     // GET, from any node
 *
 * cluster://a/b.txt maps to BASE/a/b.txt (each path segment percent-encoded).
 * Reads stream straight from PHP's http:// wrapper (nothing is held in
 * memory). Writes are buffered in php://temp (memory up to "maxmemory",
 * then a temporary file) and sent as one PUT when the stream is flushed or
 * closed, streamed from that buffer over a socket with a Content-Length.
 *
 * Errors behave like file://: the function returns false and a warning is
 * raised (E_USER_WARNING from here, since userland code cannot raise
 * E_WARNING; PHP adds its own E_WARNING where it does so for any wrapper).
 *
 * Needs only PHP >= 7.4 with allow_url_fopen = On; no extension.
 * See README.md next to this file.
 */

namespace ClusterStorage;

final class StreamWrapper
{
    const VERSION = '1.0';

    /** @var resource|null set by PHP for every operation */
    public $context;

    /** @var array<string, array> scheme => configuration */
    private static $config = [];
    /** @var string|null */
    private static $lastError = null;

    /** @var string the cluster:// URL this stream was opened with */
    private $url = '';
    /** @var string the http(s):// URL it maps to */
    private $http = '';
    /** @var array configuration of the scheme, merged with the context */
    private $cfg = [];
    /** @var string r, w, x, a or c */
    private $mode = '';
    /** @var resource|null read: the http stream; write: the php://temp buffer */
    private $fp = null;
    /** @var array<string,string> last response headers (lower-case names) */
    private $headers = [];
    /** @var int|null Content-Length of the GET being read */
    private $length = null;
    /** @var int bytes read so far */
    private $got = 0;
    /** @var bool the buffer holds content not yet PUT */
    private $dirty = false;
    /** @var array<int,string> precondition headers of the next PUT */
    private $precondition = [];
    /** @var resource|null connection opened at fopen() for the first PUT */
    private $sock = null;

    // ------------------------------------------------------------ public API

    /**
     * Register SCHEME:// as a view of the cluster URL space BASEURL
     * (e.g. 'http://127.0.0.1:8080/files').  Options:
     *   timeout    float   connect/read timeout in seconds (30)
     *   headers    array   extra request headers, ['Authorization' => '...']
     *   ssl        array   ssl context options for https:// bases
     *   maxmemory  int     bytes a write buffer keeps in memory before it
     *                      spills to a temporary file (2 MiB)
     * Registering the same scheme again replaces its configuration.
     */
    public static function register($scheme, $baseUrl, array $options = [])
    {
        if (!preg_match('/^[A-Za-z][A-Za-z0-9+.-]+$/', $scheme)) {
            throw new \InvalidArgumentException("invalid scheme name '$scheme'");
        }
        $parts = parse_url($baseUrl);
        if ($parts === false || !isset($parts['scheme'], $parts['host'])
            || !in_array(strtolower($parts['scheme']), ['http', 'https'], true)) {
            throw new \InvalidArgumentException("base URL must be http:// or https://, got '$baseUrl'");
        }
        $key = strtolower($scheme);
        if (in_array($key, array_map('strtolower', stream_get_wrappers()), true)) {
            if (!isset(self::$config[$key])) {
                throw new \RuntimeException("the scheme '$scheme' is already registered by another wrapper");
            }
            stream_wrapper_unregister($scheme);
        }
        self::$config[$key] = [
            'scheme'    => $scheme,
            'base'      => rtrim($baseUrl, '/'),
            'timeout'   => isset($options['timeout']) ? (float)$options['timeout'] : 30.0,
            'headers'   => self::headerList(isset($options['headers']) ? $options['headers'] : []),
            'ssl'       => isset($options['ssl']) ? (array)$options['ssl'] : [],
            'maxmemory' => isset($options['maxmemory']) ? (int)$options['maxmemory'] : 2 * 1024 * 1024,
        ];
        if (!stream_wrapper_register($scheme, self::class, STREAM_IS_URL)) {
            unset(self::$config[$key]);
            throw new \RuntimeException("could not register the scheme '$scheme'");
        }
    }

    /** Unregister a scheme registered with register(). */
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

    /** The http(s):// URL a cluster:// URL maps to. */
    public static function httpUrl($url)
    {
        $w = new self();
        return $w->resolve($url) ? $w->http : null;
    }

    /** A response header of this stream (GET for reads, PUT after a flush). */
    public function header($name)
    {
        $name = strtolower($name);
        return isset($this->headers[$name]) ? $this->headers[$name] : null;
    }

    /** X-ClusterStorage-Version of the file read, or of the last PUT. */
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
        // PHP never passes STREAM_REPORT_ERRORS to a wrapper's opener (it
        // reports a generic failure itself), so always say why; @ silences.
        $report = true;
        if (!$this->resolve($path, $report)) {
            return false;
        }
        $m = str_replace(['b', 't'], '', $mode);
        switch ($m) {
            case 'r':
                return $this->openRead($report);
            case 'w':
            case 'x':
            case 'a':
            case 'c':
                return $this->openWrite($m, $report);
            default:
                return $this->fail("failed to open stream: mode '$mode' is not supported "
                    . "(use r, w, x, a or c; read-write modes are not)", $report);
        }
    }

    public function stream_read($count)
    {
        if ($this->mode !== 'r') {
            return false;
        }
        $data = fread($this->fp, $count);
        if ($data === false) {
            $data = '';
        }
        $this->got += strlen($data);
        if (strlen($data) < $count && feof($this->fp)) {
            $meta = stream_get_meta_data($this->fp);
            if (!empty($meta['timed_out'])) {
                $this->fail('read timed out after ' . $this->got . ' bytes', true);
            } elseif ($this->length !== null && $this->got < $this->length) {
                $this->fail("transfer cut short: got {$this->got} of {$this->length} bytes", true);
                $this->length = null;    // warn once
            }
        }
        return $data;
    }

    public function stream_write($data)
    {
        if ($this->mode === 'r') {
            return 0;
        }
        if ($this->mode === 'a') {
            fseek($this->fp, 0, SEEK_END);
        }
        $n = fwrite($this->fp, $data);
        if ($n === false) {
            return 0;
        }
        if ($n > 0) {
            $this->dirty = true;
        }
        return $n;
    }

    public function stream_eof()
    {
        return feof($this->fp);
    }

    public function stream_tell()
    {
        return ftell($this->fp);
    }

    public function stream_seek($offset, $whence = SEEK_SET)
    {
        if ($this->mode === 'r') {
            return false;           // an HTTP body is not seekable
        }
        return fseek($this->fp, $offset, $whence) === 0;
    }

    public function stream_truncate($size)
    {
        if ($this->mode === 'r' || $size < 0) {
            return false;
        }
        if (!ftruncate($this->fp, $size)) {
            return false;
        }
        $this->dirty = true;
        return true;
    }

    /** fflush() stores what was written so far (one PUT) and reports it. */
    public function stream_flush()
    {
        if ($this->mode === 'r' || !$this->dirty) {
            return true;
        }
        return $this->commit();
    }

    public function stream_close()
    {
        if ($this->fp === null) {
            return;
        }
        if ($this->mode !== 'r' && $this->dirty) {
            $this->commit();
        }
        fclose($this->fp);
        $this->fp = null;
        if ($this->sock) {
            fclose($this->sock);
            $this->sock = null;
        }
    }

    public function stream_stat()
    {
        if ($this->mode === 'r') {
            return self::statArray($this->length === null ? 0 : $this->length,
                                   self::httpTime($this->header('Last-Modified')));
        }
        $st = fstat($this->fp);
        return self::statArray($st['size'], time());
    }

    public function stream_set_option($option, $arg1, $arg2)
    {
        if ($option === STREAM_OPTION_READ_TIMEOUT && $this->mode === 'r') {
            return stream_set_timeout($this->fp, $arg1, $arg2);
        }
        return false;
    }

    public function stream_cast($cast_as)
    {
        return $this->mode === 'r' ? $this->fp : false;
    }

    // -------------------------------------------------- path functions

    public function url_stat($path, $flags)
    {
        $quiet = ($flags & STREAM_URL_STAT_QUIET) !== 0;
        if (!$this->resolve($path, !$quiet)) {
            return false;
        }
        if ($this->isRoot($path)) {
            return self::statArray(0, 0, 040755);
        }
        list($st, $err) = $this->request('HEAD');
        if ($st === 200) {
            $len = $this->header('Content-Length');
            return self::statArray($len === null ? 0 : (int)$len,
                                   self::httpTime($this->header('Last-Modified')));
        }
        if ($st === 404) {
            // PHP itself reports "stat failed for ..." when not quiet.
            self::$lastError = "{$this->url}: no such file (HTTP 404)";
            return false;
        }
        $this->fail('stat failed: ' . ($err !== null ? $err : $this->describe($st)), !$quiet);
        return false;
    }

    public function unlink($path)
    {
        if (!$this->resolve($path, true)) {
            return false;
        }
        list($st, $err) = $this->request('DELETE');
        clearstatcache();
        if ($st === 200 || $st === 204) {
            return true;
        }
        return $this->fail(($err !== null ? $err : $this->describe($st)), true);
    }

    /**
     * rename(): GET the source, PUT it to the target (streamed), DELETE the
     * source.  Not atomic: if the DELETE fails the file exists twice and
     * rename() returns false with a warning.
     */
    public function rename($from, $to)
    {
        $dst = new self();
        $dst->context = $this->context;
        if (!$this->resolve($from, true) || !$dst->resolve($to, true)) {
            return false;
        }
        $this->url = "$from,$to";           // messages say rename(FROM,TO): ...
        if ($this->http === $dst->http) {
            return $this->request('HEAD')[0] === 200
                ?: $this->fail('no such file', true);
        }
        if (!$this->copyTo($dst)) {
            return false;
        }
        list($st, $err) = $this->request('DELETE');
        clearstatcache();
        if ($st === 204 || $st === 200 || $st === 404) {
            return true;
        }
        return $this->fail("copied to {$dst->url} but could not delete the source: "
            . ($err !== null ? $err : $this->describe($st)), true);
    }

    /** Directories are implicit (PUT creates parents): mkdir succeeds and does nothing. */
    public function mkdir($path, $mode, $options)
    {
        return $this->resolve($path, true);
    }

    /** Directories are implicit: rmdir succeeds and does nothing. */
    public function rmdir($path, $options)
    {
        return $this->resolve($path, true);
    }

    /** touch() creates a missing file (empty); it cannot change an mtime. */
    public function stream_metadata($path, $option, $value)
    {
        if (!$this->resolve($path, true)) {
            return false;
        }
        if ($option !== STREAM_META_TOUCH) {
            return $this->fail('changing owner, group or permissions is not supported', true);
        }
        list($st, $err) = $this->request('HEAD');
        if ($st === 200) {
            return true;
        }
        if ($st !== 404) {
            return $this->fail('touch failed: ' . ($err !== null ? $err : $this->describe($st)), true);
        }
        $empty = fopen('php://memory', 'rb');
        list($st, $err) = $this->put($empty, 0, ['If-None-Match: *']);
        fclose($empty);
        clearstatcache();
        if ($st === 201 || $st === 204 || $st === 412) {     // 412: created meanwhile
            return true;
        }
        return $this->fail('touch failed: ' . ($err !== null ? $err : $this->describe($st)), true);
    }

    // ------------------------------------------------------------ internals

    private function openRead($report)
    {
        $this->mode = 'r';
        list($st, $err, $fp) = $this->request('GET', [], true);
        if ($st !== 200) {
            if ($fp) {
                fclose($fp);
            }
            return $this->fail('failed to open stream: ' . ($err !== null ? $err : $this->describe($st)), $report);
        }
        $this->fp = $fp;
        $len = $this->header('Content-Length');
        $this->length = $len !== null && ctype_digit($len) ? (int)$len : null;
        return true;
    }

    private function openWrite($m, $report)
    {
        $this->mode = $m;
        $this->fp = fopen('php://temp/maxmemory:' . $this->cfg['maxmemory'], 'w+b');
        if ($m === 'a' || $m === 'c') {
            // Start from the current content; store only if still current.
            list($st, $err, $fp) = $this->request('GET', [], true);
            if ($st === 200) {
                $n = stream_copy_to_stream($fp, $this->fp);
                $len = $this->header('Content-Length');
                fclose($fp);
                if ($len !== null && (string)$n !== $len) {
                    return $this->abandon("failed to open stream: reading the current content "
                        . "got $n of $len bytes", $report);
                }
                $etag = $this->etag();
                $this->precondition = $etag !== null ? ["If-Match: $etag"] : [];
                $this->dirty = false;
                if ($m === 'c') {
                    rewind($this->fp);
                }
            } elseif ($st === 404) {
                if ($fp) {
                    fclose($fp);
                }
                $this->precondition = ['If-None-Match: *'];
                $this->dirty = true;                // a and c create the file
            } else {
                if ($fp) {
                    fclose($fp);
                }
                return $this->abandon('failed to open stream: '
                    . ($err !== null ? $err : $this->describe($st)), $report);
            }
            return $this->connectEarly($report);
        }

        // w and x: start empty; the file is stored even if nothing is written.
        $this->dirty = true;
        $ifNone = $m === 'x' ? '*' : $this->option('if_none_match');
        $ifMatch = $this->option('if_match');
        if ($ifNone !== null) {
            $this->precondition[] = "If-None-Match: $ifNone";
        }
        if ($ifMatch !== null) {
            $this->precondition[] = "If-Match: $ifMatch";
        }
        if ($this->precondition) {
            // Fail at open, like file:// 'x' does; the PUT re-checks it.
            list($st, $err) = $this->request('HEAD');
            $etag = $this->etag();
            if ($st !== 200 && $st !== 404) {
                return $this->abandon('failed to open stream: '
                    . ($err !== null ? $err : $this->describe($st)), $report);
            }
            if ($ifNone !== null && $st === 200 && ($ifNone === '*' || $ifNone === $etag)) {
                return $this->abandon('failed to open stream: file exists', $report);
            }
            if ($ifMatch !== null && ($st === 404 || ($ifMatch !== '*' && $ifMatch !== $etag))) {
                return $this->abandon('failed to open stream: ' . ($st === 404
                    ? 'no such file (If-Match)' : "the file changed (ETag $etag, expected $ifMatch)"),
                    $report);
            }
            $this->headers = [];
        }
        return $this->connectEarly($report);
    }

    /**
     * Connect at fopen() so that an unreachable node fails fopen() and
     * file_put_contents() (which cannot see a failure at close).  The
     * connection carries the first PUT.
     */
    private function connectEarly($report)
    {
        list($this->sock, $err) = $this->connect();
        return $this->sock ? true : $this->abandon('failed to open stream: ' . $err, $report);
    }

    private function abandon($message, $report)
    {
        if ($this->fp) {
            fclose($this->fp);
            $this->fp = null;
        }
        if ($this->sock) {
            fclose($this->sock);
            $this->sock = null;
        }
        $this->dirty = false;
        return $this->fail($message, $report);
    }

    /** PUT the whole buffer. */
    private function commit()
    {
        $this->dirty = false;       // a failed store is reported once, not retried at close
        $pos = ftell($this->fp);
        rewind($this->fp);
        $st = fstat($this->fp);
        list($code, $err) = $this->put($this->fp, $st['size'], $this->precondition);
        fseek($this->fp, $pos);
        clearstatcache();
        if ($code === 201 || $code === 204 || $code === 200) {
            // Later flushes of this stream replace exactly this version.
            $etag = $this->etag();
            $this->precondition = $etag !== null && $this->precondition ? ["If-Match: $etag"] : [];
            return true;
        }
        if ($code === 412) {
            $err = 'HTTP 412 Precondition Failed ('
                . (in_array('If-None-Match: *', $this->precondition, true)
                    ? 'the file exists' : 'the file was changed by someone else') . ')';
        }
        return $this->fail('failed to store: ' . ($err !== null ? $err : $this->describe($code)), true);
    }

    private function copyTo(StreamWrapper $dst)
    {
        list($st, $err, $fp) = $this->request('GET', [], true);
        if ($st !== 200) {
            if ($fp) {
                fclose($fp);
            }
            return $this->fail($err !== null ? $err : $this->describe($st), true);
        }
        $len = $this->header('Content-Length');
        $body = $fp;
        if ($len === null || !ctype_digit($len)) {
            // Unknown length: spool to a temporary buffer first.
            $body = fopen('php://temp/maxmemory:' . $this->cfg['maxmemory'], 'w+b');
            stream_copy_to_stream($fp, $body);
            fclose($fp);
            rewind($body);
            $len = fstat($body)['size'];
        }
        list($code, $perr) = $dst->put($body, (int)$len, []);
        fclose($body);
        clearstatcache();
        if ($code === 201 || $code === 204 || $code === 200) {
            return true;
        }
        return $this->fail("writing {$dst->url}: "
            . ($perr !== null ? $perr : $dst->describe($code)), true);
    }

    /** Map a cluster:// URL to its http URL; false (and a warning if $report) if it is not ours. */
    private function resolve($url, $report = false)
    {
        $this->url = $url;
        $p = strpos($url, '://');
        $scheme = $p === false ? '' : strtolower(substr($url, 0, $p));
        if (!isset(self::$config[$scheme])) {
            return $this->fail('scheme not registered with ' . self::class . '::register()', $report);
        }
        $cfg = self::$config[$scheme];
        $ctx = $this->context ? stream_context_get_options($this->context) : [];
        $opt = isset($ctx[$cfg['scheme']]) ? $ctx[$cfg['scheme']]
             : (isset($ctx[$scheme]) ? $ctx[$scheme] : []);
        if (isset($opt['timeout'])) {
            $cfg['timeout'] = (float)$opt['timeout'];
        }
        if (isset($opt['headers'])) {
            $cfg['headers'] = array_merge($cfg['headers'], self::headerList($opt['headers']));
        }
        $cfg['options'] = $opt;
        $this->cfg = $cfg;
        $path = ltrim(substr($url, $p + 3), '/');
        if (strpos($path, "\0") !== false) {
            return $this->fail('invalid path', $report);
        }
        $this->http = $cfg['base'] . '/' . implode('/', array_map('rawurlencode', explode('/', $path)));
        return true;
    }

    private function isRoot($url)
    {
        return trim(substr($url, strpos($url, '://') + 3), '/') === '';
    }

    private function option($name)
    {
        return isset($this->cfg['options'][$name]) ? (string)$this->cfg['options'][$name] : null;
    }

    /**
     * A request through PHP's http:// wrapper.  Returns [status, error, stream]:
     * status 0 and an error message when no HTTP answer came; the stream
     * (open, positioned at the body) only if $keep.
     */
    private function request($method, array $headers = [], $keep = false)
    {
        $this->headers = [];
        $ctx = stream_context_create([
            'http' => [
                'method'           => $method,
                'header'           => array_merge($this->cfg['headers'], $headers),
                'ignore_errors'    => true,
                'timeout'          => $this->cfg['timeout'],
                'protocol_version' => 1.1,
                'follow_location'  => $method === 'GET' || $method === 'HEAD' ? 1 : 0,
                'user_agent'       => 'ClusterStorage-PHP/' . self::VERSION,
            ],
            'ssl' => $this->cfg['ssl'],
        ]);
        $error = null;
        set_error_handler(function ($no, $msg) use (&$error) {
            $error = $msg;
            return true;
        });
        try {
            $fp = fopen($this->http, 'rb', false, $ctx);
        } finally {
            restore_error_handler();
        }
        if ($fp === false) {
            $error = $error === null ? 'no answer' : preg_replace('/^.*?: (failed to open stream: )?/i', '', $error);
            return [0, "cannot reach {$this->http}: $error", null];
        }
        $meta = stream_get_meta_data($fp);
        $status = $this->parseHeaders(isset($meta['wrapper_data']) ? (array)$meta['wrapper_data'] : []);
        if (!$keep) {
            fclose($fp);
            $fp = null;
        }
        return [$status, $status === 0 ? "malformed answer from {$this->http}" : null, $fp];
    }

    /**
     * PUT $length bytes of $body (a stream), streamed over a socket: PHP's
     * http:// wrapper could only send a body held in a string.
     * Returns [status, error].
     */
    private function put($body, $length, array $headers)
    {
        $this->headers = [];
        $u = parse_url($this->http);
        $lines = ['PUT ' . (isset($u['path']) ? $u['path'] : '/') . ' HTTP/1.1',
                  'Host: ' . $u['host'] . (isset($u['port']) ? ':' . $u['port'] : ''),
                  'User-Agent: ClusterStorage-PHP/' . self::VERSION,
                  'Connection: close',
                  'Content-Type: application/octet-stream',
                  'Content-Length: ' . $length];
        if (isset($u['user'])) {
            $lines[] = 'Authorization: Basic ' . base64_encode(rawurldecode($u['user']) . ':'
                . (isset($u['pass']) ? rawurldecode($u['pass']) : ''));
        }
        $head = implode("\r\n", array_merge($lines, $this->cfg['headers'], $headers)) . "\r\n\r\n";

        $sock = $this->sock;
        $this->sock = null;
        if ($sock) {
            // The connection opened at fopen() may have been closed by the
            // server while the data was being written: then it is readable.
            $r = [$sock];
            $w = $e = null;
            if (@stream_select($r, $w, $e, 0) !== 0) {
                fclose($sock);
                $sock = null;
            }
        }
        $early = $sock !== null;
        if (!$sock) {
            list($sock, $err) = $this->connect();
            if (!$sock) {
                return [0, $err];
            }
        }
        $start = ftell($body);
        list($status, $err, $retry) = $this->exchange($sock, $head, $body, $length);
        if ($early && $retry) {
            // The idle connection was dropped without a trace: the request
            // was not processed.  Once more on a new connection.
            list($sock, $err) = $this->connect();
            if (!$sock || fseek($body, $start) !== 0) {
                return [0, $err !== null ? $err : "connection to {$this->http} lost"];
            }
            list($status, $err) = $this->exchange($sock, $head, $body, $length);
        }
        return [$status, $err];
    }

    /**
     * Send one request (head, then $length bytes of $body) and read the
     * answer's head; closes $sock.  Returns [status, error, retry]: retry
     * is true if the connection closed without a single byte of answer.
     */
    private function exchange($sock, $head, $body, $length)
    {
        // A server that answers early (412, 413) may close before the whole
        // body is sent: read its answer anyway.
        set_error_handler(function () {
            return true;
        });
        try {
            $sent = self::writeAll($sock, $head) ? 0 : -1;
            while ($sent >= 0 && $sent < $length) {
                $chunk = fread($body, (int)min(65536, $length - $sent));
                if ($chunk === false || $chunk === '') {
                    break;
                }
                if (!self::writeAll($sock, $chunk)) {
                    break;
                }
                $sent += strlen($chunk);
            }
            $status = 0;
            $lines = [];
            $answered = false;
            while (($line = fgets($sock)) !== false) {
                $answered = true;
                $line = rtrim($line, "\r\n");
                if ($line === '') {
                    if ($status >= 100 && $status < 200) {   // interim answer
                        $status = 0;
                        $lines = [];
                        continue;
                    }
                    break;
                }
                if (!$lines && preg_match('#^HTTP/\d\.\d (\d{3})#', $line, $mm)) {
                    $status = (int)$mm[1];
                }
                $lines[] = $line;
            }
            $timedOut = !empty(stream_get_meta_data($sock)['timed_out']);
        } finally {
            restore_error_handler();
        }
        fclose($sock);
        $status = $this->parseHeaders($lines);
        if ($status === 0) {
            return [0, $timedOut ? "timed out waiting for {$this->http}"
                                 : "connection to {$this->http} closed without an answer",
                    !$answered && !$timedOut];
        }
        if ($sent >= 0 && $sent < $length && $status < 300) {
            return [0, "sent only $sent of $length bytes to {$this->http}", false];
        }
        return [$status, null, false];
    }

    /** Open a connection to the node of $this->http: [socket, null] or [null, error]. */
    private function connect()
    {
        $u = parse_url($this->http);
        $https = strtolower($u['scheme']) === 'https';
        $port = isset($u['port']) ? $u['port'] : ($https ? 443 : 80);
        $target = ($https ? 'ssl://' : 'tcp://') . $u['host'] . ':' . $port;
        $ctx = stream_context_create(['ssl' => $this->cfg['ssl'] + ['peer_name' => trim($u['host'], '[]')]]);
        $timeout = $this->cfg['timeout'];
        $errno = 0;
        $errstr = '';
        set_error_handler(function () {
            return true;
        });
        try {
            $sock = stream_socket_client($target, $errno, $errstr, $timeout, STREAM_CLIENT_CONNECT, $ctx);
        } finally {
            restore_error_handler();
        }
        if (!$sock) {
            return [null, "cannot reach {$this->http}: " . ($errstr !== '' ? $errstr : "error $errno")];
        }
        stream_set_timeout($sock, (int)$timeout, (int)(($timeout - floor($timeout)) * 1e6));
        return [$sock, null];
    }

    private static function writeAll($sock, $data)
    {
        while ($data !== '') {
            $n = fwrite($sock, $data);
            if ($n === false || $n === 0) {
                return false;
            }
            $data = (string)substr($data, $n);
        }
        return true;
    }

    /** Parse response header lines (the last response if redirected); returns the status. */
    private function parseHeaders(array $lines)
    {
        $status = 0;
        $this->headers = [];
        foreach ($lines as $line) {
            if (preg_match('#^HTTP/\d(?:\.\d)? (\d{3})(?: (.*))?$#', $line, $m)) {
                $status = (int)$m[1];
                $this->headers = [':reason' => isset($m[2]) ? trim($m[2]) : ''];
            } elseif (($p = strpos($line, ':')) !== false) {
                $this->headers[strtolower(trim(substr($line, 0, $p)))] = trim(substr($line, $p + 1));
            }
        }
        return $status;
    }

    private function describe($status)
    {
        $reason = $this->header(':reason');
        $s = "HTTP $status" . ($reason ? " $reason" : '');
        if ($status === 404) {
            $s .= ' (no such file)';
        } elseif ($status === 503 && ($ra = $this->header('Retry-After')) !== null) {
            $s .= " (retry after $ra s)";
        } elseif ($status === 405) {
            $s .= ' (not a writable cluster storage space?)';
        }
        return $s;
    }

    /** Record an error, warn if asked to, return false. */
    private function fail($message, $report)
    {
        // Name the PHP function that was called, as file:// warnings do:
        // "fopen(cluster://a): Failed to open stream: HTTP 404 Not Found".
        $func = '';
        foreach (debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS) as $frame) {
            if (!isset($frame['class']) || $frame['class'] !== self::class) {
                $func = $frame['function'];
                break;
            }
        }
        self::$lastError = ($func !== '' ? "$func({$this->url}): " : "{$this->url}: ") . ucfirst($message);
        if ($report) {
            trigger_error(self::$lastError, E_USER_WARNING);
        }
        return false;
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

    private static function httpTime($value)
    {
        if ($value === null) {
            return 0;
        }
        $t = strtotime($value);
        return $t === false ? 0 : $t;
    }

    private static function statArray($size, $mtime, $mode = 0100644)
    {
        $st = [
            'dev' => 0, 'ino' => 0, 'mode' => $mode, 'nlink' => 1, 'uid' => 0, 'gid' => 0,
            'rdev' => 0, 'size' => (int)$size, 'atime' => $mtime, 'mtime' => $mtime,
            'ctime' => $mtime, 'blksize' => -1, 'blocks' => -1,
        ];
        return array_merge(array_values($st), $st);
    }
}
