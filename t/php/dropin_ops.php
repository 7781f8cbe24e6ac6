<?php
// The side-by-side drop-in test of the cluster:// wrapper (SPEC section 9,
// t/54_php_dropin.t): a list of common PHP file operations, in the order
// real applications use them, run against two roots A and B that name the
// SAME directory:
//
//   php dropin_ops.php local DIR              A = B = DIR (created if
//                                             missing; must be empty)
//   php dropin_ops.php cluster URL_A URL_B    A = cluster:// over URL_A,
//                                             B = clusterb:// over URL_B:
//                                             one DAV collection (it must
//                                             exist) through two nodes
//   php dropin_ops.php list                   the op ids, one a line
//
// Option --after=ID (after the roots) skips the ops up to and including ID:
// t/54 resumes with it after an op that killed PHP (a fatal error or the
// per-op alarm), so one such op does not hide the ones after it.
//
// Output: one JSON line per op,
//   {"id": ID, "result": NORMALISED RESULT, "warnings": ["warning: ...", ...]}
// plus "output" when the op printed something it did not capture itself.
// t/54 compares the local run with the cluster run op by op.
//
// How things are normalised (the wrapper's author should know this):
//   - the roots: A and B are replaced by "ROOT" in every string (messages,
//     results).  Paths are written "$A/rel", so ROOT/rel is what both runs
//     show: locally "/tmp/x/root/rel", on the cluster "cluster://rel"
//     (A is the string "cluster:/", B "clusterb:/"; the root directory
//     itself is "$A/", i.e. "cluster://").  The class name
//     ClusterStorage\StreamWrapper, when PHP itself names it (`"...::
//     stream_open" call failed`), becomes WRAPPER.  Nothing else is
//     hidden: an http:// URL in a message stays as it is;
//   - warnings: captured by set_error_handler, each as "CLASS: message"
//     where CLASS is the level with E_WARNING and E_USER_WARNING both
//     "warning" (likewise notice, deprecated, error).  Errors silenced
//     with @ are not recorded (a user sees none either);
//   - results: resources -> "resource" ("resource (closed)"), objects ->
//     "object ClassName" (ops return something meaningful instead where it
//     matters), floats -> "float:VALUE", strings that are not UTF-8 ->
//     {"hex": ...}, stat arrays (stat, lstat, fstat, ...) -> {"stat":
//     {type (from mode & 0170000), perms (mode & 07777, octal), size (files
//     only: a directory's size depends on the file system), nlink>0, own
//     (uid == posix_getuid()), mtime, indexed (the numeric keys agree with
//     the named ones)}}; an exception -> {"exception": class, "message":
//     ...};
//   - times: an mtime within 120 s of time() is "recent", any other value
//     is shown exactly (the explicit touch() times below are in 2020-2024);
//   - listings are sorted only where the local order is unspecified
//     (readdir, dir(), the SPL directory iterators, SCANDIR_SORT_NONE);
//     scandir() and glob() sort themselves and are shown as they come.
//
// Each op starts with clearstatcache(true).  PHP keeps the last stat of a
// path string, and locally A and B are the same string while on the
// cluster they are not, so an op never stats a path through one root and
// then through the other without clearstatcache() in between (the helpers
// rd(), ex(), sz(), st(), ls() clear it first); the ops about the stat
// cache itself use one root only.
//
// Ops depend on the state earlier ops left (the layout below): each
// section says what it needs, so an op that goes wrong on the cluster can
// make later ones differ too (final-tree shows the whole state at the
// end).  The ops whose difference PHP imposes (the table in
// clients/php/README.md: fpc-lock-ex, flysystem-write-lock-ex, tempnam,
// laravel-replace, ...) leave the same state on both sides.  Nothing
// depends on timing: no sleeps, no comparison of two "recent" times.
//
//   d1/           basic files (a.txt = "hello world\nline2\n" from
//                 fpc-append on), made by the directory and
//                 file_put_contents sections, used by most later ones
//   r1/r2/r3/, uploads/2024/05/   recursive mkdir, wp_mkdir_p
//   rw/           reads (big.bin: 1 MiB + 17)
//   m/            fopen modes, one file per op
//   st/           the stat family, touch, chmod
//   cp/           copy, rename, unlink
//   ls/           listings (a.txt b.txt c.log sub/x.txt sub/deeper/y.txt)
//   spl/, tmp/, lk/, inc/, sc/, wp/, fly/, app/   SPL, tempnam, flock,
//                 include/ini/hashes, stat cache, the app sequences
//   the cleanup section at the end removes some of these; final-tree lists
//   what is left.

error_reporting(-1);
umask(022);

$usage = "usage: php dropin_ops.php local DIR [--after=ID]\n"
       . "       php dropin_ops.php cluster URL_A URL_B [--after=ID]\n"
       . "       php dropin_ops.php list\n";
$mode = $argv[1] ?? '';
$after = null;
$args = [];
foreach (array_slice($argv, 2) as $a) {
    if (strncmp($a, '--after=', 8) === 0) {
        $after = substr($a, 8);
    } else {
        $args[] = $a;
    }
}

$WRAPPER_CLASS = 'ClusterStorage\\StreamWrapper';

if ($mode === 'list') {
    foreach (array_keys(build_ops('/nonexistent/a', '/nonexistent/a')) as $id) {
        echo $id, "\n";
    }
    exit(0);
} elseif ($mode === 'local' && count($args) === 1) {
    $dir = rtrim($args[0], '/');
    if (!is_dir($dir) && !mkdir($dir, 0755, true)) {
        fwrite(STDERR, "cannot create $dir\n");
        exit(2);
    }
    if ($after === null && count(scandir($dir)) !== 2) {
        fwrite(STDERR, "$dir is not empty\n");
        exit(2);
    }
    // Its mode matters (wp_mkdir_p copies the parent's): as a fresh dir.
    chmod($dir, 0755);
    $A = $B = realpath($dir);
} elseif ($mode === 'cluster' && count($args) === 2) {
    require __DIR__ . '/../../clients/php/ClusterStorage.php';
    $opts = ['timeout' => 5];
    ClusterStorage\StreamWrapper::register('cluster', $args[0], $opts);
    ClusterStorage\StreamWrapper::register('clusterb', $args[1], $opts);
    $A = 'cluster:/';
    $B = 'clusterb:/';
} else {
    fwrite(STDERR, $usage);
    exit(2);
}

// A fixed working directory: wp_mkdir_p() stat()s "." (and copies its
// mode) when dirname() runs out of a cluster:// path (see dirname-top).
chdir('/');
$GLOBALS['ROOTS'] = [$A, $B];
$GLOBALS['UID'] = function_exists('posix_getuid') ? posix_getuid() : getmyuid();
$GLOBALS['W'] = [];
$GLOBALS['CURRENT'] = null;

set_error_handler(function ($no, $msg) {
    if (!(error_reporting() & $no)) {
        return false;                     // silenced with @: as PHP would
    }
    $GLOBALS['W'][] = level_class($no) . ': ' . nr($msg);
    return true;
});

// An op that kills PHP still gets its line (t/54 then resumes after it).
register_shutdown_function(function () {
    if ($GLOBALS['CURRENT'] === null) {
        return;
    }
    $e = error_get_last();
    emit($GLOBALS['CURRENT'], ['fatal' => $e ? nr($e['message']) : 'exit during the op']);
});
if (function_exists('pcntl_async_signals')) {
    pcntl_async_signals(true);
    pcntl_signal(SIGALRM, function () {
        emit($GLOBALS['CURRENT'], ['timeout' => 'the op took more than 60 s']);
        $GLOBALS['CURRENT'] = null;
        exit(3);
    });
}

$ops = build_ops($A, $B);
$skipping = $after !== null;
if ($skipping && !isset($ops[$after])) {
    fwrite(STDERR, "--after: no op $after\n");
    exit(2);
}
foreach ($ops as $id => $fn) {
    if ($skipping) {
        $skipping = $id !== $after;
        continue;
    }
    run_op($id, $fn);
}
exit(0);

// ---------------------------------------------------------------- runner

function run_op($id, $fn)
{
    $GLOBALS['CURRENT'] = $id;
    $GLOBALS['W'] = [];
    clearstatcache(true);
    $level = ob_get_level();
    ob_start();
    if (function_exists('pcntl_alarm')) {
        pcntl_alarm(60);
    }
    try {
        $r = $fn();
        $res = norm($r);
    } catch (Throwable $e) {
        $res = ['exception' => get_class($e), 'message' => nr($e->getMessage())];
    }
    unset($r);
    gc_collect_cycles();
    if (function_exists('pcntl_alarm')) {
        pcntl_alarm(0);
    }
    $out = '';
    while (ob_get_level() > $level) {
        $out = ob_get_clean() . $out;
    }
    emit($id, $res, $out);
    $GLOBALS['CURRENT'] = null;
}

function emit($id, $res, $out = '')
{
    while (ob_get_level() > 0) {
        $out = ob_get_clean() . $out;
    }
    $line = ['id' => $id, 'result' => $res, 'warnings' => $GLOBALS['W']];
    if ($out !== '') {
        $line['output'] = norm($out);
    }
    $json = json_encode($line, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    if ($json === false) {
        $json = json_encode(['id' => $id, 'result' => ['json_error' => json_last_error_msg()],
                             'warnings' => []]);
    }
    echo $json, "\n";
    fflush(STDOUT);
}

function level_class($no)
{
    switch ($no) {
        case E_WARNING: case E_USER_WARNING: case E_CORE_WARNING: case E_COMPILE_WARNING:
            return 'warning';
        case E_NOTICE: case E_USER_NOTICE:
            return 'notice';
        case E_DEPRECATED: case E_USER_DEPRECATED:
            return 'deprecated';
        default:
            return 'error';
    }
}

// The roots (longest first) and the wrapper's class name out of a string.
function nr($s)
{
    [$a, $b] = $GLOBALS['ROOTS'];
    $roots = array_unique([$a, $b]);
    usort($roots, function ($x, $y) { return strlen($y) - strlen($x); });
    $s = str_replace($roots, 'ROOT', $s);
    return str_replace($GLOBALS['WRAPPER_CLASS'], 'WRAPPER', $s);
}

function norm($v)
{
    if (is_string($v)) {
        $v = nr($v);
        return preg_match('//u', $v) ? $v : ['hex' => bin2hex($v)];
    }
    if (is_float($v)) {
        return 'float:' . var_export($v, true);
    }
    if (is_resource($v)) {
        return 'resource';
    }
    if (gettype($v) === 'resource (closed)') {
        return 'resource (closed)';
    }
    if (is_object($v)) {
        return 'object ' . nr(get_class($v));
    }
    if (is_array($v)) {
        if (is_stat($v)) {
            return ['stat' => stat_view($v)];
        }
        $o = [];
        foreach ($v as $k => $x) {
            $o[is_string($k) ? nr($k) : $k] = norm($x);
        }
        return $o;
    }
    return $v;                               // null, bool, int
}

function is_stat($v)
{
    foreach (['dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'size', 'mtime', 'blocks'] as $k) {
        if (!array_key_exists($k, $v)) {
            return false;
        }
    }
    return true;
}

function stat_view(array $s)
{
    $types = [0100000 => 'file', 0040000 => 'dir', 0120000 => 'link', 0010000 => 'fifo',
              0140000 => 'socket', 0020000 => 'char', 0060000 => 'block'];
    $t = $s['mode'] & 0170000;
    $type = $types[$t] ?? sprintf('type %o', $t);
    return [
        'type' => $type,
        'perms' => sprintf('%04o', $s['mode'] & 07777),
        'size' => $type === 'file' ? $s['size'] : '-',
        'nlink>0' => $s['nlink'] > 0,
        'own' => $s['uid'] === $GLOBALS['UID'],
        'mtime' => mt($s['mtime']),
        'indexed' => ($s[2] ?? null) === $s['mode'] && ($s[7] ?? null) === $s['size']
                     && ($s[9] ?? null) === $s['mtime'],
    ];
}

// ---------------------------------------------------------------- helpers

// An mtime: "recent" when within 120 s of now, else the exact value.
function mt($t)
{
    return is_int($t) && abs($t - time()) <= 120 ? 'recent' : $t;
}

// Checks (through the other root, usually): the stat cache cleared first.
function rd($p) { clearstatcache(); return file_get_contents($p); }
function ex($p) { clearstatcache(); return file_exists($p); }
function sz($p) { clearstatcache(); return filesize($p); }
function st($p) { clearstatcache(); return stat($p); }
function ls($p) { clearstatcache(); return scandir($p); }
function fmt($p) { clearstatcache(); return mt(filemtime($p)); }
function isd($p) { clearstatcache(); return is_dir($p); }
function isf($p) { clearstatcache(); return is_file($p); }
function perms($p) { clearstatcache(); $x = fileperms($p); return is_int($x) ? sprintf('%o', $x) : $x; }

function sorted(array $a) { sort($a, SORT_STRING); return $a; }

function readdir_all($dh)
{
    $names = [];
    while (($n = readdir($dh)) !== false) {
        $names[] = $n;
    }
    return $names;
}

// What a tempnam() result looks like without its random part: ROOT/dir/
// PREFIX* when it is under the root, SYSTMP/PREFIX* in the system's
// temporary directory.
function tmpname_view($p, $prefix)
{
    if (!is_string($p)) {
        return $p;
    }
    $n = nr($p);
    $tmp = rtrim(sys_get_temp_dir(), '/');
    if (strncmp($n, 'ROOT/', 5) === 0) {
        return preg_replace('#/' . preg_quote($prefix, '#') . '[^/]+$#', "/$prefix*", $n);
    }
    if (strncmp($n, "$tmp/", strlen($tmp) + 1) === 0) {
        return preg_replace('#^.*/' . preg_quote($prefix, '#') . '[^/]+$#', "SYSTMP/$prefix*", $n);
    }
    return "elsewhere: $n";
}

// A local file outside the roots (copy to and from the store).
function local_tmp($contents)
{
    $p = tempnam(sys_get_temp_dir(), 'cs54');
    file_put_contents($p, $contents);
    return $p;
}

// 1 MiB + 17 bytes that are not all alike (deterministic).
function big_data()
{
    static $d = null;
    if ($d === null) {
        $d = '';
        $h = 'seed';
        while (strlen($d) < 1048576 + 17) {
            $h = md5($h, true);
            $d .= $h . str_repeat(chr(ord($h[0]) & 0x7f), 48);
        }
        $d = substr($d, 0, 1048576 + 17);
    }
    return $d;
}

// wp_mkdir_p() of WordPress (wp-includes/functions.php), as it is.
function wp_mkdir_p($target)
{
    $wrapper = null;
    if (preg_match('!^([a-z][a-z0-9+.-]*)://!i', $target)) {   // wp_is_stream()
        list($wrapper, $target) = explode('://', $target, 2);
    }
    $target = str_replace('//', '/', $target);
    if (null !== $wrapper) {
        $target = $wrapper . '://' . $target;
    }
    $target = rtrim($target, '/');
    if (empty($target)) {
        $target = '/';
    }
    if (file_exists($target)) {
        return @is_dir($target);
    }
    if (strpos($target, '../') !== false || strpos($target, '..' . DIRECTORY_SEPARATOR) !== false) {
        return false;
    }
    $target_parent = dirname($target);
    while ('.' !== $target_parent && !is_dir($target_parent) && dirname($target_parent) !== $target_parent) {
        $target_parent = dirname($target_parent);
    }
    $stat = @stat($target_parent);
    $dir_perms = $stat ? $stat['mode'] & 0007777 : 0777;
    if (mkdir($target, $dir_perms, true)) {
        if (($dir_perms & ~umask()) != $dir_perms) {
            $folder_parts = explode('/', substr($target, strlen($target_parent) + 1));
            for ($i = 1, $c = count($folder_parts); $i <= $c; $i++) {
                chmod($target_parent . '/' . implode('/', array_slice($folder_parts, 0, $i)), $dir_perms);
            }
        }
        return true;
    }
    return false;
}

// The unique-name loop of wp_unique_filename() (without its sanitising).
function wp_unique_filename($dir, $filename)
{
    $info = pathinfo($filename);
    $ext = isset($info['extension']) ? '.' . $info['extension'] : '';
    $name = $info['filename'];
    $candidate = "$name$ext";
    for ($number = 1; file_exists("$dir/$candidate"); $number++) {
        $candidate = "$name-$number$ext";
    }
    return $candidate;
}

// Flysystem's LocalFilesystemAdapter (v3), the parts that touch files.
// Its $writeFlags are LOCK_EX by default, 0 where LOCK_EX cannot work.
function fly_ensure_dir($dirname, $visibility = 0755)
{
    if (is_dir($dirname)) {
        return 'exists';
    }
    error_clear_last();
    if (!@mkdir($dirname, $visibility, true)) {
        $mkdirError = error_get_last();
    }
    clearstatcache(true, $dirname);
    if (!is_dir($dirname)) {
        throw new RuntimeException('Unable to create a directory at ' . $dirname . '. '
                                   . ($mkdirError['message'] ?? ''));
    }
    return 'created';
}

function fly_write($path, $contents, $writeFlags = LOCK_EX)
{
    $steps = ['dir' => fly_ensure_dir(dirname($path))];
    error_clear_last();
    if (@file_put_contents($path, $contents, $writeFlags) === false) {
        throw new RuntimeException("Unable to write file at location: $path. "
                                   . (error_get_last()['message'] ?? ''));
    }
    $steps['chmod'] = chmod($path, 0644);             // visibility "public"
    return $steps;
}

function fly_list($location)
{
    if (!is_dir($location)) {
        return [];
    }
    $out = [];
    $it = new RecursiveIteratorIterator(
        new RecursiveDirectoryIterator($location, FilesystemIterator::SKIP_DOTS),
        RecursiveIteratorIterator::SELF_FIRST);
    foreach ($it as $info) {
        if ($info->isLink()) {
            continue;
        }
        $path = nr($info->getPathname());
        $out[] = $info->isDir()
            ? "dir $path " . decoct(octdec(substr(sprintf('%o', $info->getPerms()), -4))) . ' ' . mt($info->getMTime())
            : "file $path " . $info->getSize() . ' ' . decoct(octdec(substr(sprintf('%o', $info->getPerms()), -4)))
              . ' ' . mt($info->getMTime());
    }
    sort($out, SORT_STRING);
    return $out;
}

function fly_delete_directory($location)
{
    $contents = new RecursiveIteratorIterator(
        new RecursiveDirectoryIterator($location, FilesystemIterator::SKIP_DOTS),
        RecursiveIteratorIterator::CHILD_FIRST);
    $n = 0;
    foreach ($contents as $file) {
        if ($file->isDir()) {
            if (!@rmdir($file->getPathname())) {
                throw new RuntimeException('rmdir ' . $file->getPathname() . ': '
                                           . (error_get_last()['message'] ?? ''));
            }
        } elseif (!@unlink($file->getPathname())) {
            throw new RuntimeException('unlink ' . $file->getPathname() . ': '
                                       . (error_get_last()['message'] ?? ''));
        }
        $n++;
    }
    unset($contents);
    return ['removed' => $n, 'rmdir' => @rmdir($location)];
}

// ---------------------------------------------------------------- the ops

function build_ops($A, $B)
{
    $ops = [];
    $op = function ($id, $fn) use (&$ops) {
        if (isset($ops[$id])) {
            throw new LogicException("duplicate op id $id");
        }
        $ops[$id] = $fn;
    };

    // ---- directories: what an application does first (needs nothing)
    $op('is-dir-root', fn() => [is_dir("$A/"), isd("$B/"), count(ls("$B/"))]);
    $op('mkdir-new', fn() => [mkdir("$A/d1"), isd("$B/d1"), ls("$B/d1")]);
    $op('mkdir-existing', fn() => mkdir("$A/d1"));
    $op('mkdir-existing-other-node', fn() => mkdir("$B/d1"));
    $op('mkdir-missing-parent', fn() => [mkdir("$A/nope/sub"), ex("$B/nope")]);
    $op('mkdir-recursive', fn() => [mkdir("$A/r1/r2/r3", 0777, true), isd("$B/r1/r2"),
                                    isd("$B/r1/r2/r3"), ls("$B/r1")]);
    $op('mkdir-recursive-existing', fn() => mkdir("$B/r1/r2", 0777, true));
    $op('mkdir-recursive-partly-existing', fn() => [mkdir("$A/r1/r2/r3b/r4", 0755, true),
                                                    ls("$B/r1/r2")]);
    $op('wp-mkdir-p', fn() => [wp_mkdir_p("$A/uploads/2024/05"), isd("$B/uploads/2024/05"),
                               perms("$B/uploads/2024")]);
    $op('wp-mkdir-p-existing', fn() => [wp_mkdir_p("$B/uploads/2024/05"), wp_mkdir_p("$A/uploads/2024/05/")]);

    // ---- file_put_contents (needs d1/)
    $op('fpc-new', fn() => [file_put_contents("$A/d1/a.txt", "hello\n"), rd("$B/d1/a.txt")]);
    $op('fpc-replace', fn() => [file_put_contents("$A/d1/a.txt", "hello world\n"), rd("$B/d1/a.txt")]);
    $op('fpc-append', fn() => [file_put_contents("$A/d1/a.txt", "line2\n", FILE_APPEND), rd("$B/d1/a.txt")]);
    $op('fpc-lock-ex', function () use ($A, $B) {
        // PHP refuses LOCK_EX (without FILE_APPEND) for any "://" path but
        // file://; the op removes what it made, so no later op sees the
        // difference
        $r = [file_put_contents("$A/d1/lock-ex.txt", "locked\n", LOCK_EX), ex("$B/d1/lock-ex.txt")];
        if (ex("$A/d1/lock-ex.txt")) {
            unlink("$A/d1/lock-ex.txt");
        }
        return $r;
    });
    $op('fpc-append-lock-ex', fn() => [file_put_contents("$A/d1/locked.txt", "locked\n"),
                                       file_put_contents("$A/d1/locked.txt", "more\n", FILE_APPEND | LOCK_EX),
                                       file_put_contents("$B/d1/locked.txt", "from b\n", FILE_APPEND | LOCK_EX),
                                       rd("$A/d1/locked.txt")]);
    $op('fpc-append-missing', fn() => [file_put_contents("$A/d1/appended.txt", "first\n", FILE_APPEND),
                                       rd("$B/d1/appended.txt")]);
    $op('fpc-missing-dir', fn() => [file_put_contents("$A/nodir/x.txt", "x"), ex("$B/nodir")]);
    $op('fpc-array', fn() => [file_put_contents("$A/d1/array.txt", ["a\n", "b\n", "c\n"]), rd("$B/d1/array.txt")]);
    $op('fpc-stream', function () use ($A, $B) {
        $m = fopen('php://memory', 'w+');
        fwrite($m, "from a stream\n");
        rewind($m);
        return [file_put_contents("$A/d1/stream.txt", $m), rd("$B/d1/stream.txt")];
    });
    $op('fpc-empty', fn() => [file_put_contents("$A/d1/empty.txt", ''), sz("$B/d1/empty.txt"),
                              rd("$B/d1/empty.txt"), isf("$B/d1/empty.txt")]);
    $op('fpc-binary', function () use ($A, $B) {
        $bin = '';
        for ($i = 0; $i < 256; $i++) {
            $bin .= chr($i);
        }
        return [file_put_contents("$A/d1/bin.dat", $bin . $bin), md5(rd("$B/d1/bin.dat")), sz("$B/d1/bin.dat")];
    });
    $op('fpc-onto-dir', fn() => file_put_contents("$A/d1", 'x'));
    $op('fpc-under-file', fn() => file_put_contents("$A/d1/a.txt/x", 'x'));
    $op('fpc-via-b-read-via-a', fn() => [file_put_contents("$B/d1/fromb.txt", "written through b\n"),
                                         rd("$A/d1/fromb.txt")]);
    $op('mkdir-on-file', fn() => mkdir("$A/d1/a.txt"));
    $op('mkdir-under-file', fn() => mkdir("$A/d1/a.txt/sub"));
    $op('mkdir-recursive-under-file', fn() => mkdir("$A/d1/a.txt/sub/deeper", 0777, true));

    // ---- reading (needs d1/a.txt = "hello world\nline2\n")
    $op('fgc-whole', fn() => file_get_contents("$B/d1/a.txt"));
    $op('fgc-offset', fn() => file_get_contents("$B/d1/a.txt", false, null, 6));
    $op('fgc-offset-length', fn() => file_get_contents("$B/d1/a.txt", false, null, 6, 5));
    $op('fgc-negative-offset', fn() => file_get_contents("$B/d1/a.txt", false, null, -6));
    $op('fgc-length-zero', fn() => file_get_contents("$B/d1/a.txt", false, null, 0, 0));
    $op('fgc-offset-past-end', fn() => file_get_contents("$B/d1/a.txt", false, null, 100));
    $op('fgc-missing', fn() => file_get_contents("$B/d1/missing.txt"));
    $op('file-lines', fn() => file("$B/d1/a.txt"));
    $op('file-flags', fn() => [file("$B/d1/array.txt", FILE_IGNORE_NEW_LINES),
                               file("$B/d1/a.txt", FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES)]);
    $op('file-missing', fn() => file("$B/d1/missing.txt"));
    $op('readfile', function () use ($B) {
        ob_start();
        $n = readfile("$B/d1/a.txt");
        return ['return' => $n, 'output' => ob_get_clean()];
    });
    $op('readfile-missing', fn() => readfile("$B/d1/missing.txt"));
    $op('fpassthru', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'rb');
        $first = fread($f, 6);
        ob_start();
        $n = fpassthru($f);
        $out = ob_get_clean();
        return [$first, $n, $out, feof($f), fclose($f)];
    });
    $op('fgets-loop', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'r');
        $lines = [];
        while (($line = fgets($f)) !== false) {
            $lines[] = $line;
        }
        return [$lines, feof($f), fclose($f)];
    });
    $op('fgets-length-fgetc', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'r');
        $r = [fgets($f, 5), fgetc($f), fgetc($f), ftell($f), fgets($f), fgetc($f)];
        fclose($f);
        return $r;
    });
    $op('feof-exact-read', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'r');
        $r = [feof($f), fread($f, 18), feof($f), fread($f, 1), feof($f), ftell($f)];
        fclose($f);
        return $r;
    });
    $op('fseek-whence', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'r');
        $r = [fseek($f, 6), fread($f, 5), ftell($f),
              fseek($f, 1, SEEK_CUR), fread($f, 4), ftell($f),
              fseek($f, -3, SEEK_END), fread($f, 10), ftell($f), feof($f),
              fseek($f, -1), ftell($f), rewind($f), ftell($f), fread($f, 5)];
        fclose($f);
        return $r;
    });
    $op('fseek-past-end', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'r');
        $r = [fseek($f, 100), ftell($f), fread($f, 10), feof($f)];
        fclose($f);
        return $r;
    });
    $op('stream-get-contents', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'r');
        $r = [stream_get_contents($f, 5, 6), stream_get_contents($f), stream_get_contents($f),
              stream_get_contents($f, -1, 0)];
        fclose($f);
        return $r;
    });
    $op('stream-copy-to-stream', function () use ($A, $B) {
        $in = fopen("$A/d1/a.txt", 'r');
        $out = fopen("$A/d1/copied.txt", 'w');
        $r = [stream_copy_to_stream($in, $out), fclose($in), fclose($out)];
        $r[] = rd("$B/d1/copied.txt");
        return $r;
    });
    $op('stream-copy-to-memory', function () use ($B) {
        $in = fopen("$B/d1/a.txt", 'r');
        $mem = fopen('php://memory', 'w+');
        $r = [stream_copy_to_stream($in, $mem, 5, 12)];
        rewind($mem);
        $r[] = stream_get_contents($mem);
        fclose($in);
        return $r;
    });
    $op('fwrite-large', function () use ($A, $B) {
        mkdir("$A/rw");
        $f = fopen("$A/rw/big.bin", 'wb');
        $n = 0;
        foreach (str_split(big_data(), 65536) as $chunk) {
            $n += fwrite($f, $chunk);
        }
        return [$n, fclose($f), sz("$B/rw/big.bin"), sha1_file("$B/rw/big.bin") === sha1(big_data())];
    });
    $op('fread-large', function () use ($B) {
        $f = fopen("$B/rw/big.bin", 'rb');
        $ctx = hash_init('sha1');
        $n = 0;
        $short = 0;
        while (!feof($f)) {
            $s = fread($f, 8192);
            if ($s === false) {
                break;
            }
            $short += strlen($s) < 8192 ? 1 : 0;
            $n += strlen($s);
            hash_update($ctx, $s);
        }
        fclose($f);
        return [$n, hash_final($ctx) === sha1(big_data()), $short];
    });
    $op('fgc-large', fn() => [strlen(file_get_contents("$B/rw/big.bin")),
                              file_get_contents("$B/rw/big.bin", false, null, 1048576) === substr(big_data(), 1048576)]);
    $op('fflush-visible-before-close', function () use ($A, $B) {
        $f = fopen("$A/rw/flushed.txt", 'w');
        $r = [fwrite($f, "flushed\n"), fflush($f), rd("$B/rw/flushed.txt")];
        $r[] = fwrite($f, "after\n");
        $r[] = fclose($f);
        $r[] = rd("$B/rw/flushed.txt");
        return $r;
    });

    // ---- fopen, every mode, on an existing ("0123456789") and a missing
    // file, with the same calls in between (some do not fit the mode: file://
    // answers those with false and a notice), read back through B
    $op('fopen-modes-dir', fn() => mkdir("$A/m"));
    foreach (['r', 'r+', 'w', 'w+', 'a', 'a+', 'x', 'x+', 'c', 'c+'] as $m) {
        foreach (['existing', 'missing'] as $state) {
            $slug = str_replace('+', '-plus', $m);
            $op("fopen-$slug-$state", function () use ($A, $B, $m, $state, $slug) {
                $name = "m/$slug-$state.txt";
                if ($state === 'existing') {
                    file_put_contents("$A/$name", '0123456789');
                }
                $f = fopen("$A/$name", $m);
                if ($f === false) {
                    return ['fopen' => false, 'after' => ex("$B/$name") ? rd("$B/$name") : 'absent'];
                }
                $r = [];
                $r['tell0'] = ftell($f);
                $r['read4'] = fread($f, 4);
                $r['tell1'] = ftell($f);
                $r['write'] = fwrite($f, 'AB');
                $r['tell2'] = ftell($f);
                $r['seekend'] = fseek($f, 0, SEEK_END);
                $r['tell3'] = ftell($f);
                $r['write2'] = fwrite($f, 'yz');
                $r['rewind'] = rewind($f);
                $r['readall'] = stream_get_contents($f);
                $r['eof'] = feof($f);
                $r['flush'] = fflush($f);
                $r['fstat'] = fstat($f);
                $r['close'] = fclose($f);
                $r['after'] = rd("$B/$name");
                return $r;
            });
        }
    }
    $op('fopen-rb-wb-ab', function () use ($A, $B) {
        $w = fopen("$A/m/binary.txt", 'wb');
        $r = [fwrite($w, "one\r\n"), fclose($w)];
        $a = fopen("$A/m/binary.txt", 'ab');
        $r[] = fwrite($a, "two\r\n");
        $r[] = fclose($a);
        $f = fopen("$B/m/binary.txt", 'rb');
        $r[] = fread($f, 100);
        $r[] = fclose($f);
        return $r;
    });
    $op('fopen-w-dir', fn() => fopen("$A/d1", 'w'));
    $op('fopen-w-missing-dir', fn() => fopen("$A/nodir/f.txt", 'w'));
    $op('ftruncate-grow', function () use ($A, $B) {
        file_put_contents("$A/m/trunc.txt", 'abc');
        $f = fopen("$A/m/trunc.txt", 'r+');
        $r = [ftruncate($f, 8), ftell($f), fstat($f)['size'], fclose($f), bin2hex(rd("$B/m/trunc.txt"))];
        return $r;
    });
    $op('ftruncate-shrink', function () use ($A, $B) {
        $f = fopen("$A/m/trunc.txt", 'c+');
        $r = [fseek($f, 0, SEEK_END), ftell($f), ftruncate($f, 2), ftell($f), fwrite($f, 'Z'),
              fclose($f), bin2hex(rd("$B/m/trunc.txt"))];
        return $r;
    });
    $op('ftruncate-readonly', function () use ($A, $B) {
        file_put_contents("$A/m/ro.txt", 'read only');
        $f = fopen("$B/m/ro.txt", 'r');
        $r = [ftruncate($f, 0), fclose($f), rd("$A/m/ro.txt")];
        return $r;
    });
    $op('fstat-read', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'r');
        $r = fstat($f);
        fclose($f);
        return $r;
    });
    $op('stream-meta-mode', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'rb');
        $md = stream_get_meta_data($f);
        fclose($f);
        return ['mode' => $md['mode'], 'seekable' => $md['seekable'], 'uri' => $md['uri'],
                'eof' => $md['eof'], 'timed_out' => $md['timed_out'], 'blocked' => $md['blocked'],
                'unread_bytes' => $md['unread_bytes']];
    });
    $op('stream-meta-types', function () use ($B) {
        $f = fopen("$B/d1/a.txt", 'rb');
        $md = stream_get_meta_data($f);
        fclose($f);
        $keys = array_keys($md);
        sort($keys);
        return ['wrapper_type' => $md['wrapper_type'], 'stream_type' => $md['stream_type'],
                'keys' => $keys];
    });
    $op('stream-is-local', function () use ($A, $B) {
        $f = fopen("$B/d1/a.txt", 'r');
        $r = [stream_is_local("$A/d1/a.txt"), stream_is_local($f)];
        fclose($f);
        return $r;
    });
    $op('fprintf-fputs', function () use ($A, $B) {
        $f = fopen("$A/m/printf.txt", 'w');
        $r = [fprintf($f, "%05d|%s\n", 42, 'x'), fputs($f, "fputs\n"), fclose($f), rd("$B/m/printf.txt")];
        return $r;
    });

    // ---- the stat family on a file, a directory and a missing path
    // (needs d1/a.txt, 18 bytes)
    $targets = ['file' => "$B/d1/a.txt", 'dir' => "$B/d1", 'missing' => "$B/d1/none"];
    $each = function ($fn) use ($targets) {
        $r = [];
        foreach ($targets as $k => $p) {
            clearstatcache();
            $r[$k] = $fn($p);
        }
        return $r;
    };
    $op('is-dir', fn() => $each('is_dir'));
    $op('is-file', fn() => $each('is_file'));
    $op('file-exists', fn() => $each('file_exists'));
    $op('file-exists-trailing-slash', fn() => [file_exists("$B/d1/"), is_dir("$B/d1/"),
                                               file_exists("$B/d1/a.txt/"), is_file("$B/d1/a.txt/")]);
    $op('filesize', fn() => $each(function ($p) { $s = filesize($p); return is_int($s) && is_dir($p) ? 'int' : $s; }));
    $op('filemtime', fn() => $each(fn($p) => mt(filemtime($p))));
    $op('is-readable', fn() => $each('is_readable'));
    $op('is-writable', fn() => $each('is_writable'));
    $op('is-executable', fn() => $each('is_executable'));
    $op('stat', fn() => $each('stat'));
    $op('lstat', fn() => $each('lstat'));
    $op('fileperms', fn() => $each(function ($p) { $x = fileperms($p); return is_int($x) ? sprintf('%o', $x) : $x; }));
    $op('filetype', fn() => $each('filetype'));
    $op('fileowner', fn() => $each(function ($p) { $u = fileowner($p); return is_int($u) ? $u === $GLOBALS['UID'] : $u; }));
    $op('is-link', fn() => $each('is_link'));
    $op('stat-after-write-via-b', fn() => [file_put_contents("$B/d1/fromb.txt", "longer, through b\n"),
                                           st("$A/d1/fromb.txt"), rd("$A/d1/fromb.txt")]);

    // ---- touch and chmod (makes st/)
    $op('touch-missing', fn() => [mkdir("$A/st"), touch("$A/st/new.txt"), sz("$B/st/new.txt"),
                                  mt(filemtime("$B/st/new.txt"))]);
    $op('touch-existing', fn() => [touch("$A/d1/a.txt"), rd("$B/d1/a.txt"), mt(filemtime("$B/d1/a.txt"))]);
    $op('touch-time', fn() => [file_put_contents("$A/st/old.txt", "old\n"), touch("$A/st/old.txt", 1700000000),
                               fmt("$B/st/old.txt"), st("$B/st/old.txt"),
                               rd("$B/st/old.txt")]);
    $op('touch-time-new-file', fn() => [touch("$A/st/dated.txt", 1690000000), mt(filemtime("$A/st/dated.txt")),
                                        sz("$B/st/dated.txt"), fmt("$B/st/dated.txt")]);
    $op('touch-time-dir', fn() => [mkdir("$A/st/dated"), touch("$A/st/dated", 1680000000),
                                   fmt("$B/st/dated"), isd("$B/st/dated")]);
    $op('write-after-touch-time', fn() => [file_put_contents("$A/st/old.txt", "new\n"),
                                           fmt("$B/st/old.txt")]);
    $op('rename-keeps-mtime', fn() => [file_put_contents("$A/st/keep.txt", "k"), touch("$A/st/keep.txt", 1710000000),
                                       rename("$A/st/keep.txt", "$A/st/kept.txt"),
                                       fmt("$B/st/kept.txt")]);
    $op('touch-missing-dir', fn() => touch("$A/nodir/x.txt"));
    $op('chmod', fn() => [chmod("$A/st/new.txt", 0600), ex("$B/st/new.txt")]);
    $op('chmod-fileperms', fn() => perms("$B/st/new.txt"));
    $op('chmod-restore', fn() => [chmod("$A/st/new.txt", 0644), perms("$B/st/new.txt"), is_readable("$B/st/new.txt")]);
    $op('chmod-dir', fn() => [chmod("$A/st/dated", 0755), perms("$B/st/dated")]);
    $op('chmod-missing', fn() => chmod("$A/st/none", 0644));

    // ---- copy, rename, unlink (makes cp/)
    $op('copy', fn() => [mkdir("$A/cp"), copy("$A/d1/a.txt", "$A/cp/a.txt"), rd("$B/cp/a.txt"),
                         rd("$B/d1/a.txt")]);
    $op('copy-onto-existing', fn() => [file_put_contents("$A/cp/target.txt", "old target\n"),
                                       copy("$A/d1/array.txt", "$A/cp/target.txt"), rd("$B/cp/target.txt")]);
    $op('copy-missing-source', fn() => [copy("$A/cp/none.txt", "$A/cp/none-copy.txt"), ex("$B/cp/none-copy.txt")]);
    $op('copy-into-missing-dir', fn() => copy("$A/d1/a.txt", "$A/nodir/a.txt"));
    $op('copy-dir', fn() => copy("$A/d1", "$A/cp/d1copy"));
    $op('copy-through-b', fn() => [copy("$A/d1/a.txt", "$B/cp/via-b.txt"), rd("$A/cp/via-b.txt")]);
    $op('copy-from-local-file', function () use ($A, $B) {
        $p = local_tmp("uploaded bytes\n");
        $r = [copy($p, "$A/cp/imported.txt"), rd("$B/cp/imported.txt")];
        unlink($p);
        return $r;
    });
    $op('copy-to-local-file', function () use ($B) {
        $p = local_tmp('');
        $r = [copy("$B/cp/imported.txt", $p), file_get_contents($p)];
        unlink($p);
        return $r;
    });
    $op('rename-file', fn() => [copy("$A/d1/a.txt", "$A/cp/r1.txt"), rename("$A/cp/r1.txt", "$A/cp/r2.txt"),
                                ex("$B/cp/r1.txt"), rd("$B/cp/r2.txt")]);
    $op('rename-onto-existing', fn() => [rename("$A/cp/r2.txt", "$A/cp/target.txt"), ex("$B/cp/r2.txt"),
                                         rd("$B/cp/target.txt")]);
    $op('rename-missing-source', fn() => rename("$A/cp/none.txt", "$A/cp/x.txt"));
    $op('rename-into-missing-dir', fn() => [rename("$A/cp/target.txt", "$A/nodir/target.txt"),
                                            ex("$B/cp/target.txt")]);
    $op('rename-into-other-dir', fn() => [rename("$A/cp/via-b.txt", "$A/d1/moved.txt"), ex("$B/cp/via-b.txt"),
                                          rd("$B/d1/moved.txt")]);
    $op('rename-dir-with-contents', function () use ($A, $B) {
        $r = [mkdir("$A/cp/tree/sub", 0777, true), file_put_contents("$A/cp/tree/x.txt", 'x'),
              file_put_contents("$A/cp/tree/sub/y.txt", 'yy')];
        $r[] = rename("$A/cp/tree", "$A/cp/tree2");
        $r[] = isd("$B/cp/tree");
        $r[] = ls("$B/cp/tree2");
        $r[] = ls("$B/cp/tree2/sub");
        $r[] = rd("$B/cp/tree2/sub/y.txt");
        return $r;
    });
    $op('rename-dir-onto-empty-dir', fn() => [mkdir("$A/cp/empty"), rename("$A/cp/tree2", "$A/cp/empty"),
                                              isd("$B/cp/tree2"), ls("$B/cp/empty"), rd("$B/cp/empty/x.txt")]);
    $op('rename-dir-onto-nonempty-dir', fn() => [mkdir("$A/cp/full"), file_put_contents("$A/cp/full/f", 'f'),
                                                 mkdir("$A/cp/src"), rename("$A/cp/src", "$A/cp/full"),
                                                 isd("$B/cp/src"), ls("$B/cp/full")]);
    $op('rename-file-onto-dir', fn() => [rename("$A/cp/a.txt", "$A/cp/full"), ex("$B/cp/a.txt")]);
    $op('rename-dir-onto-file', fn() => [rename("$A/cp/src", "$A/cp/a.txt"), isd("$B/cp/src")]);
    $op('rename-onto-itself', fn() => [rename("$A/cp/a.txt", "$A/cp/a.txt"), rd("$B/cp/a.txt")]);
    $op('unlink-file', fn() => [unlink("$A/cp/a.txt"), ex("$B/cp/a.txt"), ls("$B/cp")]);
    $op('unlink-missing', fn() => unlink("$A/cp/a.txt"));
    $op('unlink-dir', fn() => [unlink("$A/cp/full"), isd("$B/cp/full")]);
    $op('unlink-via-b', fn() => [file_put_contents("$A/cp/gone.txt", 'g'), unlink("$B/cp/gone.txt"),
                                 ex("$A/cp/gone.txt"), file_get_contents("$A/cp/gone.txt")]);
    $op('warning-level', function () use ($A) {
        $levels = [];
        set_error_handler(function ($no) use (&$levels) {
            $levels[] = [E_WARNING => 'E_WARNING', E_USER_WARNING => 'E_USER_WARNING', E_NOTICE => 'E_NOTICE',
                         E_USER_NOTICE => 'E_USER_NOTICE'][$no] ?? "level $no";
            return true;
        });
        $r = unlink("$A/cp/none.txt");
        restore_error_handler();
        return [$r, $levels];
    });

    // ---- listings (makes ls/)
    $op('list-setup', fn() => [mkdir("$A/ls/sub/deeper", 0777, true),
                               file_put_contents("$A/ls/b.txt", 'bb'), file_put_contents("$A/ls/a.txt", 'a'),
                               file_put_contents("$A/ls/c.log", 'ccc'), file_put_contents("$A/ls/sub/x.txt", 'x'),
                               file_put_contents("$A/ls/sub/deeper/y.txt", 'y')]);
    $op('scandir', fn() => scandir("$B/ls"));
    $op('scandir-descending', fn() => scandir("$B/ls", SCANDIR_SORT_DESCENDING));
    $op('scandir-sort-none', fn() => sorted(scandir("$B/ls", SCANDIR_SORT_NONE)));
    $op('scandir-trailing-slash', fn() => scandir("$B/ls/sub/"));
    $op('scandir-missing', fn() => scandir("$B/ls/none"));
    $op('scandir-file', fn() => scandir("$B/ls/a.txt"));
    $op('scandir-after-change-other-node', fn() => [scandir("$B/ls/sub"), file_put_contents("$A/ls/sub/new.txt", 'n'),
                                                     scandir("$B/ls/sub"), unlink("$B/ls/sub/new.txt"),
                                                     scandir("$A/ls/sub")]);
    $op('opendir-readdir', function () use ($B) {
        $dh = opendir("$B/ls");
        $names = readdir_all($dh);
        closedir($dh);
        return [sorted($names), count($names)];
    });
    $op('rewinddir', function () use ($B) {
        $dh = opendir("$B/ls/sub");
        $one = readdir_all($dh);
        rewinddir($dh);
        $two = readdir_all($dh);
        closedir($dh);
        return [sorted($one), $one === $two];
    });
    $op('opendir-missing', fn() => opendir("$B/ls/none"));
    $op('opendir-file', fn() => opendir("$B/ls/a.txt"));
    $op('dir-class', function () use ($B) {
        $d = dir("$B/ls");
        $names = [];
        while (($n = $d->read()) !== false) {
            $names[] = $n;
        }
        $path = nr($d->path);
        $d->close();
        return [get_class($d), $path, sorted($names)];
    });
    $op('directory-iterator', function () use ($B) {
        $out = [];
        foreach (new DirectoryIterator("$B/ls") as $f) {
            $out[] = $f->getFilename() . ($f->isDot() ? ' dot' : '') . ($f->isDir() ? ' dir' : '')
                   . ($f->isFile() ? ' file ' . $f->getSize() : '');
        }
        return sorted($out);
    });
    $op('directory-iterator-missing', fn() => new DirectoryIterator("$B/ls/none"));
    $op('filesystem-iterator', function () use ($B) {
        $out = [];
        foreach (new FilesystemIterator("$B/ls") as $k => $f) {
            $out[] = nr($k) . ' => ' . get_class($f) . ' ' . $f->getFilename();
        }
        return sorted($out);
    });
    $op('filesystem-iterator-flags', function () use ($B) {
        $out = [];
        $it = new FilesystemIterator("$B/ls", FilesystemIterator::KEY_AS_FILENAME | FilesystemIterator::CURRENT_AS_PATHNAME);
        foreach ($it as $k => $p) {
            $out[] = "$k => " . nr($p);
        }
        return sorted($out);
    });
    $op('recursive-iterator', function () use ($B) {
        $out = [];
        $it = new RecursiveIteratorIterator(new RecursiveDirectoryIterator("$B/ls", FilesystemIterator::SKIP_DOTS),
                                            RecursiveIteratorIterator::SELF_FIRST);
        foreach ($it as $path => $f) {
            $out[] = nr($path) . ($f->isDir() ? '/' : ' ' . $f->getSize()) . ' depth ' . $it->getDepth();
        }
        return sorted($out);
    });
    $op('recursive-iterator-leaves', function () use ($B) {
        $out = [];
        $it = new RecursiveIteratorIterator(new RecursiveDirectoryIterator("$B/ls", FilesystemIterator::SKIP_DOTS));
        foreach ($it as $f) {
            $out[] = $it->getSubPathname();
        }
        return sorted($out);
    });
    $op('glob', fn() => glob("$B/ls/*.txt"));
    $op('glob-onlydir', fn() => glob("$B/ls/*", GLOB_ONLYDIR));
    $op('glob-nomatch', fn() => glob("$B/ls/*.none"));

    // ---- SPL files (makes spl/)
    $op('splfileobject-write', function () use ($A, $B) {
        mkdir("$A/spl");
        $f = new SplFileObject("$A/spl/lines.txt", 'w');
        $n = [$f->fwrite("one\n"), $f->fwrite("two\n\n"), $f->fwrite("three\n"), $f->fwrite("four")];
        $f = null;
        return [$n, rd("$B/spl/lines.txt")];
    });
    $op('splfileobject-iterate', function () use ($B) {
        $out = [];
        foreach (new SplFileObject("$B/spl/lines.txt") as $k => $line) {
            $out[] = "$k:" . $line;
        }
        return $out;
    });
    $op('splfileobject-iterate-flags', function () use ($B) {
        $f = new SplFileObject("$B/spl/lines.txt");
        $f->setFlags(SplFileObject::DROP_NEW_LINE | SplFileObject::SKIP_EMPTY | SplFileObject::READ_AHEAD);
        $out = [];
        foreach ($f as $k => $line) {
            $out[] = "$k:$line";
        }
        return $out;
    });
    $op('splfileobject-seek', function () use ($B) {
        $f = new SplFileObject("$B/spl/lines.txt");
        $f->seek(3);
        $r = [$f->key(), $f->current()];
        $f->seek(100);
        $r[] = $f->key();
        $r[] = $f->eof();
        $f->rewind();
        $r[] = $f->fgets();
        $r[] = $f->ftell();
        return $r;
    });
    $op('splfileobject-fputcsv', function () use ($A, $B) {
        $f = new SplFileObject("$A/spl/data.csv", 'w');
        $r = [$f->fputcsv(['id', 'name', 'note']), $f->fputcsv([1, 'Ann', 'says "hi", twice']),
              $f->fputcsv([2, 'Bob', "two\nlines"])];
        $f = null;
        $r[] = rd("$B/spl/data.csv");
        return $r;
    });
    $op('splfileobject-fgetcsv', function () use ($B) {
        $f = new SplFileObject("$B/spl/data.csv");
        $f->setFlags(SplFileObject::READ_CSV | SplFileObject::SKIP_EMPTY | SplFileObject::READ_AHEAD);
        $rows = [];
        foreach ($f as $row) {
            $rows[] = $row;
        }
        return $rows;
    });
    $op('fputcsv-fgetcsv', function () use ($A, $B) {
        $w = fopen("$A/spl/fn.csv", 'w');
        $r = [fputcsv($w, ['a', 'b c', 'd;e']), fputcsv($w, ['x', '', '"q"']), fclose($w)];
        $f = fopen("$B/spl/fn.csv", 'r');
        while (($row = fgetcsv($f)) !== false) {
            $r[] = $row;
        }
        fclose($f);
        return $r;
    });
    $op('splfileobject-rw', function () use ($A, $B) {
        $f = new SplFileObject("$A/spl/rw.txt", 'w+');
        $r = [$f->fwrite("abcdef"), $f->fseek(2), $f->fread(2), $f->ftruncate(3), $f->fflush(), $f->fstat()['size']];
        $f = null;
        $r[] = rd("$B/spl/rw.txt");
        return $r;
    });
    $op('splfileobject-missing', fn() => new SplFileObject("$B/spl/none.txt"));
    $op('splfileinfo-file', function () use ($B) {
        $i = new SplFileInfo("$B/spl/lines.txt");
        return [$i->getFilename(), $i->getExtension(), $i->getBasename('.txt'), $i->getPath(), $i->getPathname(),
                $i->isFile(), $i->isDir(), $i->isLink(), $i->isReadable(), $i->isWritable(), $i->getSize(),
                mt($i->getMTime()), $i->getType(), sprintf('%o', $i->getPerms()),
                $i->getOwner() === $GLOBALS['UID'], (string)$i];
    });
    $op('splfileinfo-dir', function () use ($B) {
        $i = new SplFileInfo("$B/spl");
        return [$i->getFilename(), $i->isDir(), $i->isFile(), $i->getType(), mt($i->getMTime()),
                sprintf('%o', $i->getPerms())];
    });
    $op('splfileinfo-missing', function () use ($B) {
        $i = new SplFileInfo("$B/spl/none.txt");
        $r = [$i->isFile(), $i->isDir(), $i->isReadable()];
        try {
            $r[] = $i->getSize();
        } catch (RuntimeException $e) {
            $r[] = get_class($e) . ': ' . nr($e->getMessage());
        }
        return $r;
    });
    $op('splfileinfo-realpath', fn() => (new SplFileInfo("$B/spl/lines.txt"))->getRealPath());
    $op('splfileinfo-openfile', function () use ($B) {
        $f = (new SplFileInfo("$B/spl/lines.txt"))->openFile('r');
        return [get_class($f), $f->fgets(), $f->fgets()];
    });

    // ---- temporary files (makes tmp/)
    $op('tempnam', function () use ($A, $B) {
        mkdir("$A/tmp");
        $p = tempnam("$A/tmp", 'cs');
        $r = [tmpname_view($p, 'cs'), is_string($p) && is_file($p), count(ls("$B/tmp"))];
        if (is_string($p)) {
            unlink($p);
        }
        return $r;
    });
    $op('tmpfile-to-store', function () use ($A, $B) {
        $t = tmpfile();
        fwrite($t, "spooled\n");
        rewind($t);
        $out = fopen("$A/tmp/spooled.txt", 'w');
        $r = [stream_copy_to_stream($t, $out), fclose($out), fclose($t), rd("$B/tmp/spooled.txt")];
        return $r;
    });

    // ---- flock (makes lk/): locks are per open file; two opens in one
    // process conflict as two processes would
    $op('flock-sh', function () use ($A, $B) {
        mkdir("$A/lk");
        file_put_contents("$A/lk/l.txt", "0\n");
        $f = fopen("$B/lk/l.txt", 'r');
        $r = [flock($f, LOCK_SH), fread($f, 10), flock($f, LOCK_UN), fclose($f)];
        return $r;
    });
    $op('flock-ex', function () use ($A, $B) {
        $f = fopen("$A/lk/l.txt", 'c');
        $r = [flock($f, LOCK_EX), ftruncate($f, 0), fwrite($f, "1\n"), fflush($f), flock($f, LOCK_UN), fclose($f),
              rd("$B/lk/l.txt")];
        return $r;
    });
    $op('flock-ex-nb-conflict', function () use ($A, $B) {
        $a = fopen("$A/lk/l.txt", 'c');
        $b = fopen("$B/lk/l.txt", 'c');
        $r = [flock($a, LOCK_EX), flock($b, LOCK_EX | LOCK_NB), flock($b, LOCK_SH | LOCK_NB)];
        fclose($b);
        fclose($a);
        return $r;
    });
    $op('flock-wouldblock', function () use ($A, $B) {
        $a = fopen("$A/lk/l.txt", 'c');
        $b = fopen("$B/lk/l.txt", 'c');
        flock($a, LOCK_EX);
        $wb = 'unset';
        flock($b, LOCK_EX | LOCK_NB, $wb);
        $wb2 = 'unset';
        flock($a, LOCK_UN, $wb2);
        fclose($b);
        fclose($a);
        return [$wb, $wb2];
    });
    $op('flock-sh-sh', function () use ($A, $B) {
        $a = fopen("$A/lk/l.txt", 'r');
        $b = fopen("$B/lk/l.txt", 'r');
        $r = [flock($a, LOCK_SH), flock($b, LOCK_SH | LOCK_NB), flock($a, LOCK_UN), flock($b, LOCK_UN)];
        fclose($a);
        fclose($b);
        return $r;
    });
    $op('flock-sh-blocks-ex', function () use ($A, $B) {
        $a = fopen("$A/lk/l.txt", 'r');
        $b = fopen("$B/lk/l.txt", 'c');
        $r = [flock($a, LOCK_SH), flock($b, LOCK_EX | LOCK_NB, $wb), $wb];
        fclose($a);
        fclose($b);
        return $r;
    });
    $op('flock-unlock-frees', function () use ($A, $B) {
        $a = fopen("$A/lk/l.txt", 'c');
        $b = fopen("$B/lk/l.txt", 'c');
        $r = [flock($a, LOCK_EX), flock($a, LOCK_UN), flock($b, LOCK_EX | LOCK_NB, $wb), $wb, flock($b, LOCK_UN)];
        fclose($a);
        fclose($b);
        return $r;
    });
    $op('flock-close-frees', function () use ($A, $B) {
        $a = fopen("$A/lk/l.txt", 'c');
        $r = [flock($a, LOCK_EX), fclose($a)];
        $b = fopen("$B/lk/l.txt", 'c');
        $r[] = flock($b, LOCK_EX | LOCK_NB);
        fclose($b);
        return $r;
    });
    $op('flock-upgrade', function () use ($A) {
        $a = fopen("$A/lk/l.txt", 'c+');
        $r = [flock($a, LOCK_SH), flock($a, LOCK_EX | LOCK_NB), flock($a, LOCK_SH | LOCK_NB), flock($a, LOCK_UN)];
        fclose($a);
        return $r;
    });
    $op('flock-counter', function () use ($A, $B) {
        $r = [];
        foreach ([$A, $B, $A] as $root) {
            $f = fopen("$root/lk/counter.txt", 'c+');
            flock($f, LOCK_EX);
            $n = (int)stream_get_contents($f);
            ftruncate($f, 0);
            rewind($f);
            fwrite($f, (string)($n + 1));
            fflush($f);
            flock($f, LOCK_UN);
            fclose($f);
            $r[] = $n;
        }
        $r[] = rd("$B/lk/counter.txt");
        return $r;
    });
    // ---- include, ini files, hashes (makes inc/)
    $op('include-setup', fn() => [mkdir("$A/inc"),
                                  file_put_contents("$A/inc/config.php",
                                                    "<?php\nreturn ['db' => 'app', 'n' => 42, 'list' => [1, 2]];\n")]);
    $op('include-return', fn() => include "$B/inc/config.php");
    $op('require-return', fn() => require "$B/inc/config.php");
    $op('require-once', fn() => [file_put_contents("$A/inc/once.php", "<?php\nreturn 'once';\n"),
                                 require_once "$B/inc/once.php", require_once "$B/inc/once.php",
                                 include_once "$B/inc/once.php"]);
    $op('include-missing', fn() => include "$B/inc/none.php");
    $op('include-magic-constants', fn() => [file_put_contents("$A/inc/magic.php",
                                                               "<?php\nreturn [__FILE__, __DIR__, basename(__FILE__), __LINE__];\n"),
                                            include "$B/inc/magic.php"]);
    $op('include-defines', fn() => [file_put_contents("$A/inc/lib.php",
                                                       "<?php\nfunction cs54_lib_fn(\$x) { return \$x * 2; }\nclass Cs54Lib { const V = 'v'; }\n"),
                                    include "$B/inc/lib.php", cs54_lib_fn(21), Cs54Lib::V]);
    $op('include-after-rewrite', fn() => [file_put_contents("$A/inc/config.php", "<?php\nreturn 'rewritten';\n"),
                                          include "$B/inc/config.php", include "$A/inc/config.php"]);
    $op('include-output', function () use ($A, $B) {
        file_put_contents("$A/inc/template.php", "Hello <?= \$name ?>!\n");
        $name = 'World';
        ob_start();
        $r = include "$B/inc/template.php";
        return [$r, ob_get_clean()];
    });
    $op('include-parse-error', fn() => [file_put_contents("$A/inc/broken.php", "<?php\nreturn [1, 2;\n"),
                                        include "$B/inc/broken.php"]);
    $op('parse-ini-file', fn() => [file_put_contents("$A/inc/app.ini",
                                                      "; comment\nname = app\ndebug = true\n[db]\nhost = \"127.0.0.1\"\nport = 3306\n"),
                                   parse_ini_file("$B/inc/app.ini"), parse_ini_file("$B/inc/app.ini", true),
                                   parse_ini_file("$B/inc/app.ini", true, INI_SCANNER_TYPED)]);
    $op('parse-ini-file-missing', fn() => parse_ini_file("$B/inc/none.ini"));
    $op('md5-file', fn() => [md5_file("$B/d1/a.txt"), md5_file("$B/d1/a.txt", true) === md5(rd("$A/d1/a.txt"), true)]);
    $op('sha1-file', fn() => sha1_file("$B/d1/bin.dat"));
    $op('hash-file', fn() => [hash_file('sha256', "$B/d1/a.txt"), hash_file('crc32b', "$B/rw/big.bin")]);
    $op('md5-file-missing', fn() => md5_file("$B/d1/none"));
    $op('hash-update-stream', function () use ($B) {
        $ctx = hash_init('md5');
        $f = fopen("$B/d1/a.txt", 'r');
        $n = hash_update_stream($ctx, $f, 5);
        fclose($f);
        return [$n, hash_final($ctx)];
    });

    // ---- the stat cache (one root per op: see the top of the file)
    $op('statcache-stale-after-write', fn() => [mkdir("$A/sc"), file_put_contents("$A/sc/f", 'abc'),
                                                filesize("$A/sc/f"), file_put_contents("$A/sc/f", 'abcdef'),
                                                filesize("$A/sc/f"), sz("$A/sc/f")]);
    $op('statcache-stale-after-append', fn() => [filesize("$A/sc/f"), file_put_contents("$A/sc/f", 'gh', FILE_APPEND),
                                                 filesize("$A/sc/f"), sz("$A/sc/f")]);
    $op('statcache-new-file', fn() => [file_exists("$A/sc/n"), file_put_contents("$A/sc/n", 'n'), file_exists("$A/sc/n")]);
    $op('statcache-unlink-clears', fn() => [file_exists("$A/sc/n"), unlink("$A/sc/n"), file_exists("$A/sc/n")]);
    $op('statcache-rename-clears', fn() => [file_put_contents("$A/sc/r", 'r'), is_file("$A/sc/r"),
                                            rename("$A/sc/r", "$A/sc/r2"), is_file("$A/sc/r"), is_file("$A/sc/r2")]);
    $op('statcache-mkdir-rmdir', fn() => [is_dir("$A/sc/d"), mkdir("$A/sc/d"), is_dir("$A/sc/d"), rmdir("$A/sc/d"),
                                          is_dir("$A/sc/d")]);
    $op('statcache-touch', fn() => [mt(filemtime("$A/sc/f")), touch("$A/sc/f", 1600000000), mt(filemtime("$A/sc/f")),
                                    fmt("$A/sc/f")]);
    $op('statcache-other-path', fn() => [filesize("$A/sc/f"), filesize("$A/sc/r2"),
                                         file_put_contents("$A/sc/f", 'x'), filesize("$A/sc/f")]);

    // ---- paths and the disk
    $op('realpath', fn() => realpath("$B/d1/a.txt"));
    $op('realpath-dir', fn() => realpath("$B/d1/../r1"));
    $op('realpath-missing', fn() => realpath("$B/d1/none"));
    $op('dirname-top', fn() => [dirname("$B/d1/a.txt"), dirname("$B/d1"), basename("$B/d1/a.txt"),
                                pathinfo("$B/d1/a.txt")]);
    $op('disk-free-space', fn() => (function ($x) { return is_float($x) ? ($x > 0 ? 'float>0' : $x) : $x; })(disk_free_space("$B/")));
    $op('disk-total-space', fn() => (function ($x) { return is_float($x) ? ($x > 0 ? 'float>0' : $x) : $x; })(disk_total_space("$B/")));

    // ---- application sequences
    $op('wp-unique-filename', function () use ($A, $B) {
        wp_mkdir_p("$A/wp/uploads");
        $names = [];
        for ($i = 0; $i < 3; $i++) {
            $n = wp_unique_filename("$A/wp/uploads", 'photo.jpg');
            file_put_contents("$A/wp/uploads/$n", "jpeg $i");
            $names[] = $n;
        }
        return [$names, ls("$B/wp/uploads"), wp_unique_filename("$B/wp/uploads", 'photo.jpg')];
    });
    $op('wp-put-contents-chmod', function () use ($A, $B) {
        // WP_Filesystem_Direct::put_contents: fopen wb, fwrite, fclose, chmod
        $fp = fopen("$A/wp/uploads/index.php", 'wb');
        $r = [fwrite($fp, "<?php // Silence is golden.\n"), fclose($fp), chmod("$A/wp/uploads/index.php", 0644),
              rd("$B/wp/uploads/index.php")];
        return $r;
    });
    $op('flysystem-write-lock-ex', function () use ($A, $B) {
        // the adapter's default LOCK_EX (see fpc-lock-ex); what it made is
        // removed again
        try {
            $r = [fly_write("$A/fly/locked/readme.md", "# readme\n"), rd("$B/fly/locked/readme.md")];
        } catch (RuntimeException $e) {
            $r = nr($e->getMessage());
        }
        if (ex("$A/fly/locked/readme.md")) {
            unlink("$A/fly/locked/readme.md");
        }
        if (isd("$A/fly/locked")) {
            rmdir("$A/fly/locked");
        }
        return $r;
    });
    $op('flysystem-write', fn() => [fly_write("$A/fly/docs/readme.md", "# readme\n", 0),
                                    fly_write("$A/fly/docs/more.md", "more\n", 0), rd("$B/fly/docs/readme.md")]);
    $op('flysystem-exists', fn() => [is_file("$B/fly/docs/readme.md"), is_dir("$B/fly/docs"),
                                     is_file("$B/fly/docs/none.md"), is_dir("$B/fly/none")]);
    $op('flysystem-size-mtime', function () use ($B) {
        clearstatcache();
        $s = @filesize("$B/fly/docs/readme.md");
        $t = @filemtime("$B/fly/docs/readme.md");
        return [$s, mt($t)];
    });
    $op('flysystem-write-error', function () use ($A) {
        try {
            return fly_write("$A/fly/docs/readme.md/x.md", 'x', 0);
        } catch (RuntimeException $e) {
            return nr($e->getMessage());
        }
    });
    $op('flysystem-list', fn() => fly_list("$B/fly"));
    $op('flysystem-write-stream', function () use ($A, $B) {
        fly_ensure_dir("$A/fly/streams");
        $in = fopen('php://temp', 'w+');
        fwrite($in, str_repeat("stream line\n", 1000));
        rewind($in);
        $stream = @fopen("$A/fly/streams/s.txt", 'w+b');
        $ok = $stream && false !== stream_copy_to_stream($in, $stream) && fclose($stream);
        return [$ok, sz("$B/fly/streams/s.txt"), md5(rd("$B/fly/streams/s.txt"))];
    });
    $op('flysystem-read-stream', function () use ($B) {
        $s = @fopen("$B/fly/streams/s.txt", 'rb');
        $n = 0;
        while (!feof($s)) {
            $n += strlen(fread($s, 1000));
        }
        return [$n, fclose($s)];
    });
    $op('flysystem-move', fn() => [fly_ensure_dir("$A/fly/archive/2024"),
                                   @rename("$A/fly/docs/more.md", "$A/fly/archive/2024/more.md"),
                                   ex("$B/fly/docs/more.md"), rd("$B/fly/archive/2024/more.md")]);
    $op('flysystem-copy', fn() => [fly_ensure_dir("$A/fly/copies"),
                                   @copy("$A/fly/docs/readme.md", "$A/fly/copies/readme.md"),
                                   rd("$B/fly/copies/readme.md")]);
    $op('flysystem-delete', fn() => [file_exists("$A/fly/copies/readme.md") && @unlink("$A/fly/copies/readme.md"),
                                     ex("$B/fly/copies/readme.md"), @unlink("$A/fly/copies/none.md")]);
    $op('flysystem-delete-directory', fn() => [fly_delete_directory("$A/fly/archive"), isd("$B/fly/archive"),
                                               ls("$B/fly")]);
    $op('laravel-replace', function () use ($A, $B) {
        // Illuminate\Filesystem\Filesystem::replace()
        $path = "$A/app/settings.json";
        mkdir("$A/app");
        file_put_contents($path, '{"v":1}');
        clearstatcache(true, $path);
        $path = realpath($path) ?: $path;
        $tempPath = tempnam(dirname($path), basename($path));
        $r = [tmpname_view($tempPath, 'settings.json'), chmod($tempPath, 0777 - umask()),
              file_put_contents($tempPath, '{"v":2}'), rename($tempPath, $path)];
        if (is_file($tempPath)) {
            unlink($tempPath);
        }
        $r[] = rd("$B/app/settings.json");
        return $r;
    });
    $op('atomic-replace-rename', fn() => [file_put_contents("$A/app/settings.json.tmp", '{"v":3}'),
                                          rename("$A/app/settings.json.tmp", "$A/app/settings.json"),
                                          rd("$B/app/settings.json"), ex("$B/app/settings.json.tmp")]);
    $op('cache-file-include', function () use ($A, $B) {
        // Symfony/Composer-style cache: var_export into a temp name, rename
        // over the target, include it through the other node
        $data = ['routes' => ['/' => 'home', '/a' => 'a'], 'built' => 1700000000];
        $tmp = "$A/app/cache.php." . 'tmp54';
        $r = [file_put_contents($tmp, '<?php return ' . var_export($data, true) . ";\n"),
              rename($tmp, "$A/app/cache.php")];
        $r[] = include "$B/app/cache.php";
        return $r;
    });
    $op('session-like-files', function () use ($A, $B) {
        mkdir("$A/app/sess");
        $r = [];
        foreach (['s1', 's2'] as $s) {
            $f = fopen("$A/app/sess/sess_$s", 'c+');
            flock($f, LOCK_EX);
            $r[] = stream_get_contents($f);
            ftruncate($f, 0);
            rewind($f);
            fwrite($f, "user|s:3:\"$s\";");
            fflush($f);
            flock($f, LOCK_UN);
            fclose($f);
        }
        $r[] = ls("$B/app/sess");
        $r[] = rd("$B/app/sess/sess_s2");
        return $r;
    });
    $op('log-append-lines', function () use ($A, $B) {
        $r = [];
        for ($i = 1; $i <= 3; $i++) {
            $root = $i % 2 ? $A : $B;
            $r[] = file_put_contents("$root/app/app.log", "[$i] event\n", FILE_APPEND | LOCK_EX);
        }
        $f = fopen("$B/app/app.log", 'a');
        $r[] = fwrite($f, "[4] via fopen a\n");
        $r[] = fclose($f);
        $r[] = rd("$A/app/app.log");
        return $r;
    });

    // ---- cleanup: rmdir and recursive removal
    $op('rmdir-empty', fn() => [rmdir("$A/r1/r2/r3"), isd("$B/r1/r2/r3"), ls("$B/r1/r2")]);
    $op('rmdir-nonempty', fn() => [rmdir("$A/d1"), isd("$B/d1")]);
    $op('rmdir-missing', fn() => rmdir("$A/r1/r2/r3"));
    $op('rmdir-file', fn() => [rmdir("$A/d1/a.txt"), ex("$B/d1/a.txt")]);
    $op('rmdir-via-b', fn() => [mkdir("$A/r1/gone"), rmdir("$B/r1/gone"), isd("$A/r1/gone")]);
    $op('rm-rf', function () use ($A, $B) {
        $it = new RecursiveIteratorIterator(new RecursiveDirectoryIterator("$A/ls", FilesystemIterator::SKIP_DOTS),
                                            RecursiveIteratorIterator::CHILD_FIRST);
        $done = [];
        foreach ($it as $path => $f) {
            $done[] = ($f->isDir() ? 'rmdir ' : 'unlink ') . nr($path) . ' '
                    . var_export($f->isDir() ? rmdir($path) : unlink($path), true);
        }
        $done = sorted($done);
        $done[] = rmdir("$A/ls");
        $done[] = isd("$B/ls");
        return $done;
    });
    $op('final-tree', function () use ($B) {
        $out = [];
        $it = new RecursiveIteratorIterator(new RecursiveDirectoryIterator("$B/", FilesystemIterator::SKIP_DOTS),
                                            RecursiveIteratorIterator::SELF_FIRST);
        foreach ($it as $path => $f) {
            $out[] = $f->isDir() ? nr($path) . '/' : nr($path) . ' ' . $f->getSize() . ' '
                   . substr(md5_file($path), 0, 8);
        }
        return sorted($out);
    });
    $op('final-scandir-root', fn() => scandir("$B/"));

    return $ops;
}
