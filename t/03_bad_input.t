# Bad input gets a clear answer and changes nothing (SPEC §3, §5, §6.8):
# other methods (405 + Allow), writes in a read-only space, bodies over
# LimitRequestBody (413) or cut short (400), overlong keys (414), hostile
# keys (.., %2e%2e, NUL, encoded slashes, control bytes, the module's own
# working directory), and symbolic links inside the root.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key storage_root tmp_files raw_http wait_for
              registry_rows);
use Apache::TestRequest ();
use File::Temp qw(tempdir);
use File::Path qw(make_path);

my $root = storage_root();
my $host = Apache::TestRequest::hostport();

# Nothing of KEY exists: no file, no registry row; and no temp file stays.
sub nothing_stored {
    my ($key, $what) = @_;
    ok !-e "$root$key", "$what: no file on disk";
    is registry_rows($key), 0, "$what: no registry row";
    ok wait_for(5, sub { !tmp_files() }), "$what: no temp file stays behind"
        or diag 'left in tmp: ' . join ' ', tmp_files();
}

sub allow_set {
    my ($r) = @_;
    return { map { uc($_) => 1 } split /\s*,\s*/, $r->header('Allow') // '' };
}

# ------------------------------------------------------------ methods
my $key = '/files/' . unique_key('bad') . '.txt';
is req(PUT => $key, "original\n")->code, 201, 'fixture stored';

for my $m (qw(POST OPTIONS PATCH MKCOL PROPFIND LOCK COPY MOVE)) {
    for my $target ($key, '/files/' . unique_key('bad-absent') . '.txt') {
        my $r = req($m => $target, $m eq 'OPTIONS' ? undef : "body of $m\n",
                    ($m =~ /^(COPY|MOVE)$/
                        ? (Destination => "http://$host/files/" . unique_key('dst'))
                        : ()));
        my $which = $target eq $key ? 'existing' : 'absent';
        is $r->code, 405, "$m on an $which key in /files is 405";
        my $allow = allow_set($r);
        ok $allow->{GET} && $allow->{PUT} && $allow->{DELETE},
            "$m: Allow lists GET, PUT, DELETE"
            or diag 'Allow: ' . ($r->header('Allow') // '(none)');
        ok !$allow->{$m}, "$m: Allow does not list the refused method itself"
            or diag 'Allow: ' . ($r->header('Allow') // '(none)');
        if ($which eq 'absent') {
            ok !-e "$root$target", "$m on an absent key creates no file";
            is registry_rows($target), 0, "$m on an absent key registers nothing";
        }
    }
}
is req(GET => $key)->content, "original\n", 'the methods changed nothing';

# Every method Allow lists is actually accepted.
{
    my $r = req(POST => $key, "x");
    my $allow = allow_set($r);
    for my $m (sort keys %$allow) {
        next if $m eq 'PUT' || $m eq 'DELETE';   # would change the fixture
        my $res = req($m => $key);
        isnt $res->code, 405, "$m, listed in Allow, is not refused with 405";
    }
}

# Read-only space.
{
    my $ro = '/ro/' . unique_key('ro') . '.txt';
    my $r = req(PUT => $ro, "must not be stored\n");
    is $r->code, 405, 'PUT in the read-only /ro is 405';
    my $allow = allow_set($r);
    ok $allow->{GET}, 'Allow in /ro lists GET'
        or diag 'Allow: ' . ($r->header('Allow') // '(none)');
    ok !$allow->{PUT} && !$allow->{DELETE}, 'Allow in /ro lists neither PUT nor DELETE'
        or diag 'Allow: ' . ($r->header('Allow') // '(none)');
    nothing_stored($ro, 'PUT in /ro');
    $r = req(DELETE => $ro);
    is $r->code, 405, 'DELETE in /ro is 405';
    $r = req(POST => $ro, "x");
    is $r->code, 405, 'POST in /ro is 405';
    is req(GET => $ro)->code, 404, 'GET of an absent key in /ro is 404';
}

# ------------------------------------------------------------ 413
{
    my $small = '/files/small/' . unique_key('limit') . '.bin';
    my $r = req(PUT => $small, 'a' x 1000);
    is $r->code, 201, 'PUT under LimitRequestBody in /files/small is 201';
    my $big = '/files/small/' . unique_key('big') . '.bin';
    $r = req(PUT => $big, 'b' x 2000);
    is $r->code, 413, 'PUT with Content-Length 2000 over LimitRequestBody 1024 is 413';
    nothing_stored($big, '413 with Content-Length');

    # Chunked, the size is only known while reading.
    my $bigc = '/files/small/' . unique_key('bigc') . '.bin';
    my $chunks = join '', map { sprintf("%x\r\n%s\r\n", 500, 'c' x 500) } 1 .. 4;
    my ($st) = raw_http("PUT $bigc HTTP/1.1\r\nHost: $host\r\n"
                        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        . $chunks . "0\r\n\r\n");
    is $st, 413, 'chunked PUT of 2000 bytes over LimitRequestBody is 413';
    nothing_stored($bigc, '413 chunked');

    # A small chunked PUT works.
    my $okc = '/files/small/' . unique_key('okc') . '.bin';
    ($st) = raw_http("PUT $okc HTTP/1.1\r\nHost: $host\r\n"
                     . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     . "5\r\nhello\r\n3\r\n!!!\r\n0\r\n\r\n");
    is $st, 201, 'a small chunked PUT is 201';
    is req(GET => $okc)->content, 'hello!!!', 'and stores the de-chunked bytes';

    # A replace over the limit keeps the old version.
    my $v = req(GET => $small)->header('X-ClusterStorage-Version');
    $r = req(PUT => $small, 'z' x 2000);
    is $r->code, 413, 'replacing with an oversized body is 413';
    $r = req(GET => $small);
    is $r->content, 'a' x 1000, 'the old bytes stay';
    is $r->header('X-ClusterStorage-Version'), $v, 'and the old version';
}

# ------------------------------------------------------------ 400: cut short
{
    my $cut = '/files/' . unique_key('cut') . '.bin';
    my ($st, $resp) = raw_http("PUT $cut HTTP/1.1\r\nHost: $host\r\n"
                               . "Content-Length: 100\r\nConnection: close\r\n\r\n"
                               . ('x' x 10), 1);
    is $st, 400, 'a body cut short (10 of 100 bytes, then EOF) is 400'
        or diag $resp;
    nothing_stored($cut, 'body cut short');
    is req(GET => $cut)->code, 404, 'and the key is not served';

    my $cutc = '/files/' . unique_key('cutc') . '.bin';
    ($st, $resp) = raw_http("PUT $cutc HTTP/1.1\r\nHost: $host\r\n"
                            . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                            . "64\r\n" . ('y' x 10), 1);
    is $st, 400, 'a chunked body cut short is 400' or diag $resp;
    nothing_stored($cutc, 'chunked body cut short');

    # Cut short while replacing: the old version stays.
    my $v = req(GET => $key)->header('X-ClusterStorage-Version');
    ($st, $resp) = raw_http("PUT $key HTTP/1.1\r\nHost: $host\r\n"
                            . "Content-Length: 100\r\nConnection: close\r\n\r\n"
                            . ('x' x 10), 1);
    is $st, 400, 'a replacing body cut short is 400' or diag $resp;
    my $r = req(GET => $key);
    is $r->content, "original\n", 'the old bytes stay';
    is $r->header('X-ClusterStorage-Version'), $v, 'and the old version';
    ok wait_for(5, sub { !tmp_files() }), 'no temp file stays behind';
}

# ------------------------------------------------------------ 414
{
    # Keys made of many short segments (the file system walk is not the
    # limit), exactly 2048 bytes (allowed) and 2049 bytes (414).
    my $base = '/files/' . unique_key('long');
    my $fill = sub {
        my ($len) = @_;
        my $k = $base;
        $k .= '/' . ('s' x 99) while length($k) + 100 <= $len - 10;
        $k .= '/' . ('t' x ($len - length($k) - 1));
        return $k;
    };
    my $k2048 = $fill->(2048);
    my $k2049 = $fill->(2049);
    is length($k2048), 2048, '(a 2048-byte key)';
    is length($k2049), 2049, '(a 2049-byte key)';
    my $r = req(PUT => $k2048, "max\n");
    is $r->code, 201, 'PUT of a 2048-byte key is 201';
    is req(GET => $k2048)->content, "max\n", 'and GET serves it';

    my $long = $base . '-x/' . join('/', ('seg' x 10) x 70);    # ~2200 bytes
    ok length($long) > 2048, '(a key longer than 2048 bytes)';
    is req(GET => $long)->code, 414, 'GET of a key over 2048 bytes is 414';
    is req(PUT => $long, "x")->code, 414, 'PUT of a key over 2048 bytes is 414';
    is req(PUT => $k2049, "x")->code, 414, 'PUT of a 2049-byte key is 414';
    is req(DELETE => $long)->code, 414, 'DELETE of a key over 2048 bytes is 414';
    ok !-e "$root$base-x", 'nothing of the overlong key is on disk';
    is registry_rows($long), 0, 'and nothing is registered';

    # One long name: still 414, whatever the file system thinks of it.
    my $one = '/files/' . ('n' x 2100);
    is req(GET => $one)->code, 414, 'GET of a single 2100-byte name is 414';
    is req(PUT => $one, "x")->code, 414, 'PUT of a single 2100-byte name is 414';
}

# ------------------------------------------------------------ hostile keys
my $passwd = do { local (@ARGV, $/) = '/etc/passwd'; <> } // '';
my $u = unique_key('hostile');
{
    for my $path ("/files/a/../../etc/passwd",
                  "/files/../../../etc/passwd",
                  "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                  "/files/%2E%2E/%2E%2E/etc/passwd",
                  "/files/..%2f..%2f..%2fetc/passwd",
                  "/files/a/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                  "/ro/../../../../../../../etc/passwd") {
        my ($st, $resp) = raw_http("GET $path HTTP/1.1\r\nHost: $host\r\n"
                                   . "Connection: close\r\n\r\n");
        like $st, qr/^4\d\d$/, "GET $path is a 4xx ($st)";
        unlike $resp, qr/root:.*:0:0:/, "GET $path does not read /etc/passwd";
    }

    # Writes that try to climb out of /files: refused, nothing outside.
    my $docroot = Apache::Test::vars('documentroot');
    my $parent = $root;
    $parent =~ s{/[^/]+$}{};
    for my $path ("/files/$u-a/../../$u-1.txt",
                  "/files/../$u-2.txt",
                  "/files/../../$u-3.txt",
                  "/files/%2e%2e/$u-4.txt",
                  "/files/%2e%2e/%2e%2e/$u-5.txt",
                  "/files/..%2f$u-6.txt") {
        my ($st, $resp) = raw_http("PUT $path HTTP/1.1\r\nHost: $host\r\n"
                                   . "Content-Length: 5\r\nConnection: close\r\n\r\nevil\n");
        like $st, qr/^4\d\d$/, "PUT $path is a 4xx ($st)";
    }
    my @escaped = grep { /\Q$u\E/ } (glob("$docroot/*"), glob("$root/*"),
                                     glob("$parent/*"), glob("$root/files/*"));
    is_deeply \@escaped, [], 'no climbing PUT wrote a file anywhere';
    ok wait_for(5, sub { !tmp_files() }), 'and left no temp file';

    # A ".." that stays inside /files is normalised: the key is the
    # normalised path.
    my ($st) = raw_http("PUT /files/$u-dir/../$u-norm.txt HTTP/1.1\r\nHost: $host\r\n"
                        . "Content-Length: 5\r\nConnection: close\r\n\r\nnorm\n");
    is $st, 201, 'PUT /files/x/../y is stored under the normalised key';
    is req(GET => "/files/$u-norm.txt")->content, "norm\n",
        'GET of the normalised key serves it';
    ok !-e "$root/files/$u-dir", 'no directory for the ".." segment';
}

# NUL, encoded slash, control bytes: a clear 4xx, nothing stored.
{
    my @cases = (
        # Apache itself refuses %00 (like %2F) with 404 before any module
        # sees the request; either answer is clear.
        [ "/files/$u-nul%00.txt",   qr/^40[04]$/, "/files/$u-nul",     'NUL (%00)' ],
        [ "/files/$u-nul2%00/x.txt", qr/^40[04]$/, "/files/$u-nul2",   'NUL in a directory name' ],
        [ "/files/$u-sl%2Fx.txt",   qr/^404$/, "/files/$u-sl/x.txt",   'encoded slash (%2F)' ],
        [ "/files/$u-sl2%2fx.txt",  qr/^404$/, "/files/$u-sl2/x.txt",  'encoded slash (%2f)' ],
        [ "/files/$u-lf%0a.txt",    qr/^400$/, "/files/$u-lf\n.txt",   'line feed (%0a)' ],
        [ "/files/$u-cr%0d.txt",    qr/^400$/, "/files/$u-cr\r.txt",   'carriage return (%0d)' ],
        [ "/files/$u-soh%01.txt",   qr/^400$/, "/files/$u-soh\x01.txt", 'control byte (%01)' ],
        [ "/files/$u-esc%1b.txt",   qr/^400$/, "/files/$u-esc\x1b.txt", 'escape (%1b)' ],
        [ "/files/$u-del%7f.txt",   qr/^400$/, "/files/$u-del\x7f.txt", 'DEL (%7f)' ],
    );
    for my $c (@cases) {
        my ($path, $want, $decoded, $what) = @$c;
        my ($st) = raw_http("PUT $path HTTP/1.1\r\nHost: $host\r\n"
                            . "Content-Length: 5\r\nConnection: close\r\n\r\nevil\n");
        like $st, $want, "PUT with $what is $st";
        ($st) = raw_http("GET $path HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n");
        like $st, $want, "GET with $what is $st";
        ok !-e "$root$decoded", "$what: no file on disk";
        is registry_rows($decoded), 0, "$what: no registry row";
    }
    my @left = grep { /\Q$u\E-(nul|sl|lf|cr|soh|esc|del)/ } glob("$root/files/*");
    is_deeply \@left, [], 'no file of any of these keys exists under /files';
    ok wait_for(5, sub { !tmp_files() }), 'and no temp file stays behind';
}

# The module's working directory is never served, nor written.
{
    my $r = req(GET => '/files/.clusterstorage/tmp/x');
    is $r->code, 404, 'GET /files/.clusterstorage/tmp/x is 404';
    $r = req(PUT => "/files/.clusterstorage/tmp/$u", "evil\n");
    like $r->code, qr/^4\d\d$/, 'PUT /files/.clusterstorage/tmp/... is a 4xx';
    ok !-e "$root/files/.clusterstorage/tmp/$u", 'and writes nothing';
    $r = req(PUT => "/files/$u-sub/.clusterstorage/x", "evil\n");
    like $r->code, qr/^4\d\d$/, 'PUT /files/<dir>/.clusterstorage/x is a 4xx';
    ok !-e "$root/files/$u-sub", 'and creates nothing';

    opendir my $dh, "$root/.clusterstorage" or die "no state dir: $!";
    my @sub = grep { !/^\.\.?$/ } readdir $dh;
    closedir $dh;
    ok scalar(@sub), '(the node has a .clusterstorage working directory)';
    for my $path ('/rawroot/.clusterstorage/',
                  '/rawroot/.clusterstorage',
                  '/rawroot/.clusterstorage/queue/',
                  '/rawroot/.clusterstorage/tmp/',
                  '/rawroot//.clusterstorage/',
                  '/rawroot/./.clusterstorage/queue/',
                  '/rawroot/files/../.clusterstorage/',
                  '/rawroot/%2eclusterstorage/',
                  (map { "/rawroot/.clusterstorage/$_" } @sub)) {
        my ($st, $resp) = raw_http("GET $path HTTP/1.1\r\nHost: $host\r\n"
                                   . "Connection: close\r\n\r\n");
        is $st, 404, "GET $path is 404";
    }
    # Something the module wrote there must not be readable either.
    my @files;
    for my $d (@sub) {
        next unless -d "$root/.clusterstorage/$d";
        opendir my $h, "$root/.clusterstorage/$d" or next;
        push @files, map { "$d/$_" } grep { -f "$root/.clusterstorage/$d/$_" } readdir $h;
    }
    SKIP: {
        skip 'no file in the working directory', 1 unless @files;
        is req(GET => "/rawroot/.clusterstorage/$files[0]")->code, 404,
            "GET of a working file ($files[0]) through /rawroot is 404";
    }
}

# Another URL that maps onto the same file must not destroy the copy.
{
    my $k = '/files/' . unique_key('alias') . '.txt';
    is req(PUT => $k, "aliased\n")->code, 201, '(stored a key for the alias check)';
    my $r = req(GET => "/rawroot$k");
    isnt $r->code, 200, 'the copy is not served under another URL (a different key)';
    $r = req(GET => $k);
    is $r->code, 200, 'after a GET through another URL, the key is still served';
    is $r->content, "aliased\n", 'with its bytes';
    ok -f "$root$k", 'and its local copy is still on disk';
}

# ------------------------------------------------------------ symlinks
# Twice: in /files, where the core does not follow symlinks (Options
# without FollowSymLinks), and in /files/links, where it does (Options
# +FollowSymLinks, Debian's default for /var/www) so the module itself must
# refuse to write through them.
my $outside = tempdir('cs-outside-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0777, $outside;
{
    open my $fh, '>', "$outside/secret.txt" or die $!;
    print $fh "outside secret\n";
    close $fh;
}
make_path("$root/files/links");
for my $space ('/files', '/files/links') {
    my $tag = $space eq '/files' ? 'no FollowSymLinks' : 'FollowSymLinks';
    my $p = $space . '/' . unique_key('sym');

    # A directory symlink inside the root pointing outside.
    my $link = "$p-linkdir";
    symlink $outside, "$root$link" or die "symlink: $!";
    my $r = req(PUT => "$link/new.txt", "through the link\n");
    is $r->code, 403, "[$tag] PUT through a symlinked directory is 403";
    ok !-e "$outside/new.txt", "[$tag] and nothing is written outside the root";
    is registry_rows("$link/new.txt"), 0, "[$tag] and nothing is registered";
    $r = req(PUT => "$link/deeper/new.txt", "through the link\n");
    is $r->code, 403, "[$tag] PUT below a symlinked directory is 403";
    ok !-e "$outside/deeper", "[$tag] and no directory is created outside";
    $r = req(GET => "$link/secret.txt");
    like $r->code, qr/^40[34]$/, "[$tag] GET through a symlinked directory is 403/404";
    unlike $r->content, qr/outside secret/, "[$tag] and does not leak the target";
    $r = req(DELETE => "$link/secret.txt");
    like $r->code, qr/^40[34]$/, "[$tag] DELETE through a symlinked directory is 403/404";
    ok -f "$outside/secret.txt", "[$tag] and removes nothing outside";

    # A file symlink (never stored) pointing outside.
    my $flink = "$p-link.txt";
    symlink "$outside/secret.txt", "$root$flink" or die "symlink: $!";
    $r = req(GET => $flink);
    like $r->code, qr/^40[34]$/, "[$tag] GET of a symlink file is 403/404";
    unlike $r->content, qr/outside secret/, "[$tag] and does not leak the target";

    # A stored key whose copy was replaced by a symlink: never served.
    my $k = "$p-swapped.txt";
    is req(PUT => $k, "stored\n")->code, 201, "[$tag] (stored a key)";
    unlink "$root$k" or die "unlink: $!";
    symlink "$outside/secret.txt", "$root$k" or die "symlink: $!";
    $r = req(GET => $k);
    isnt $r->code, 200, "[$tag] a stored key whose copy is now a symlink is not served";
    unlike $r->content, qr/outside secret/, "[$tag] and the symlink target does not leak";

    # PUT onto a symlink file: the link is replaced (or refused), the
    # target is never written.
    $r = req(PUT => $flink, "replaced\n");
    like $r->code, qr/^(201|403)$/, "[$tag] PUT onto a symlink file is 201 or 403";
    open my $fh, '<', "$outside/secret.txt" or die $!;
    is scalar(<$fh>), "outside secret\n", "[$tag] the symlink target is not written";
    close $fh;
    if ($r->code == 201) {
        ok !-l "$root$flink", "[$tag] the symlink was replaced by a regular file";
        is req(GET => $flink)->content, "replaced\n", "[$tag] which is served";
    }
    opendir my $dh, $outside or die $!;
    is_deeply [sort grep { !/^\.\.?$/ } readdir $dh], ['secret.txt'],
        "[$tag] nothing new appeared outside the root";
    closedir $dh;
    ok wait_for(5, sub { !tmp_files() }), "[$tag] no temp file stays behind";
}

done_testing;
