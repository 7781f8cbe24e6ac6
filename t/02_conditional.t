# Range and conditional requests on cluster storage (SPEC §3): GET behaves
# exactly like Apache static files (206, 304, 412, 416); PUT and DELETE are
# conditional on the cluster-wide current version (If-Match,
# If-None-Match: *), and a failed precondition changes nothing.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key storage_root tmp_files);
use HTTP::Date qw(str2time time2str);
use Time::HiRes ();

my $key  = '/files/' . unique_key('cond') . '.txt';
my $body = join '', map { sprintf "line %04d\n", $_ } 1 .. 200;   # 2000 bytes

my $t_before = Time::HiRes::time();
my $r = req(PUT => $key, $body, 'Content-Type' => 'text/plain');
my $t_after = Time::HiRes::time();
is $r->code, 201, 'PUT of the fixture is 201' or die "cannot store the fixture\n";
my $etag = $r->header('ETag');
my $ver  = $r->header('X-ClusterStorage-Version');

# The same bytes as a plain static file in the DocumentRoot: the reference
# for "exactly as Apache static files".
(my $static = $key) =~ s{^/files/}{/static-ref-};
{
    my $docroot = Apache::Test::vars('documentroot');
    open my $fh, '>:raw', "$docroot$static" or die "$docroot$static: $!";
    print $fh $body;
    close $fh or die "close: $!";
}
END { unlink Apache::Test::vars('documentroot') . $static if $static }

# ---------------------------------------------------------------- GET
$r = req(GET => $key);
is $r->code, 200, 'plain GET is 200';
is $r->header('ETag'), $etag, 'GET sends the ETag the PUT answered';
my $lm = $r->header('Last-Modified');
ok defined $lm, 'GET sends Last-Modified';
my $lm_t = defined $lm ? str2time($lm) : undef;
ok defined $lm_t && $lm_t >= int($t_before) - 2 && $lm_t <= $t_after + 2,
    'Last-Modified is the time of the PUT'
    or diag "Last-Modified $lm; PUT between $t_before and $t_after";
like $r->header('Accept-Ranges') // '', qr/\bbytes\b/,
    'Accept-Ranges: bytes is advertised';

# Repeated GETs: same validators.
my $r2 = req(GET => $key);
is $r2->header('ETag'), $etag, 'the ETag is the same on a repeated GET';
is $r2->header('Last-Modified'), $lm,
    'Last-Modified is the same on a repeated GET';
my $h = req(HEAD => $key);
is $h->header('ETag'), $etag, 'HEAD sends the same ETag';
is $h->header('Last-Modified'), $lm, 'HEAD sends the same Last-Modified';

# Range: one range.
$r = req(GET => $key, undef, Range => 'bytes=0-9');
is $r->code, 206, 'Range bytes=0-9 is 206';
is $r->content, substr($body, 0, 10), '206 carries the first 10 bytes';
is $r->header('Content-Range'), 'bytes 0-9/' . length($body),
    'Content-Range is right';
is $r->header('Content-Length'), 10, 'Content-Length of the range is 10';
is $r->header('ETag'), $etag, '206 carries the ETag';

# Suffix range.
$r = req(GET => $key, undef, Range => 'bytes=-5');
is $r->code, 206, 'suffix range bytes=-5 is 206';
is $r->content, substr($body, -5), 'and carries the last 5 bytes';

# Several ranges: multipart/byteranges with both parts.
$r = req(GET => $key, undef, Range => 'bytes=0-4,100-109');
is $r->code, 206, 'two ranges give 206';
like $r->header('Content-Type') // '', qr{^multipart/byteranges;\s*boundary=},
    'two ranges give multipart/byteranges';
{
    my $c = $r->content;
    like $c, qr{Content-[Rr]ange: bytes 0-4/2000\r\n(?:[^\r\n]+\r\n)*\r\n\Q${\substr($body, 0, 5)}\E},
        'first part has the right range and bytes';
    like $c, qr{Content-[Rr]ange: bytes 100-109/2000\r\n(?:[^\r\n]+\r\n)*\r\n\Q${\substr($body, 100, 10)}\E},
        'second part has the right range and bytes';
}

# Unsatisfiable.
$r = req(GET => $key, undef, Range => 'bytes=5000-6000');
is $r->code, 416, 'a range past the end is 416';
{
    # Exactly as Apache static files: the same bytes served by the core
    # from the DocumentRoot are the reference.
    my $s = req(GET => $static, undef, Range => 'bytes=5000-6000');
    is $s->code, 416, '(reference: static file gives 416 too)';
    is $r->header('Content-Range'), $s->header('Content-Range'),
        '416 has the same Content-Range as a static file';
}

# If-Range with the current ETag: the range applies; with another: full body.
$r = req(GET => $key, undef, Range => 'bytes=0-9', 'If-Range' => $etag);
is $r->code, 206, 'If-Range with the current ETag gives 206';
$r = req(GET => $key, undef, Range => 'bytes=0-9',
         'If-Range' => '"1-0000000000000000"');
is $r->code, 200, 'If-Range with another ETag gives the whole file (200)';
is $r->content, $body, 'and the whole body';

# If-None-Match.
$r = req(GET => $key, undef, 'If-None-Match' => $etag);
is $r->code, 304, 'If-None-Match with the ETag is 304';
is $r->header('ETag'), $etag, '304 carries the ETag';
is $r->content, '', '304 has no body';
$r = req(GET => $key, undef, 'If-None-Match' => '"999-0123456789abcdef"');
is $r->code, 200, 'If-None-Match with another ETag is 200';
is $r->content, $body, 'and sends the bytes';
$r = req(GET => $key, undef, 'If-None-Match' => '*');
is $r->code, 304, 'If-None-Match: * on an existing file is 304';
$r = req(HEAD => $key, undef, 'If-None-Match' => $etag);
is $r->code, 304, 'HEAD with If-None-Match is 304 too';

# If-Modified-Since.
$r = req(GET => $key, undef, 'If-Modified-Since' => $lm);
is $r->code, 304, 'If-Modified-Since = Last-Modified is 304';
$r = req(GET => $key, undef,
         'If-Modified-Since' => time2str(($lm_t // time) - 3600));
is $r->code, 200, 'If-Modified-Since an hour earlier is 200';
is $r->content, $body, 'and sends the bytes';
$r = req(GET => $key, undef, 'If-Unmodified-Since' => time2str(($lm_t // time) - 3600));
is $r->code, 412, 'If-Unmodified-Since before the PUT is 412';

# If-Match on GET.
$r = req(GET => $key, undef, 'If-Match' => '"999-0123456789abcdef"');
is $r->code, 412, 'GET with a mismatching If-Match is 412';
$r = req(GET => $key, undef, 'If-Match' => $etag);
is $r->code, 200, 'GET with the matching If-Match is 200';

# The same requests against the same bytes served by Apache's core from the
# DocumentRoot (the reference for "exactly as Apache static files"): same
# status, same range headers, same bytes.
{
    # An mtime in the past: Apache makes the ETag of a file changed within
    # the current second weak, which would change what If-Match means.
    my $docroot = Apache::Test::vars('documentroot');
    my $past = int($lm_t // time) - 10;
    utime $past, $past, "$docroot$static" or die "utime: $!";
    my $sh = req(HEAD => $static);
    like $sh->header('ETag') // '', qr/^"/, '(reference: static ETag is strong)';
    is $sh->code, 200, '(reference: the static copy is reachable)';
    my %val = (
        cs     => { etag => $etag, lm => $lm },
        static => { etag => $sh->header('ETag'), lm => $sh->header('Last-Modified') },
    );
    my $old = time2str(($lm_t // time) - 3600);
    my $future = time2str(time + 3600);
    my @cases = (
        [ 'Range 0-9'            => sub { (Range => 'bytes=0-9') } ],
        [ 'Range suffix'         => sub { (Range => 'bytes=-5') } ],
        [ 'Range open end'       => sub { (Range => 'bytes=1990-') } ],
        [ 'Range two parts'      => sub { (Range => 'bytes=0-4,100-109') } ],
        [ 'Range overlapping'    => sub { (Range => 'bytes=0-10,5-15') } ],
        [ 'Range unsatisfiable'  => sub { (Range => 'bytes=5000-6000') } ],
        [ 'Range malformed'      => sub { (Range => 'bytes=abc') } ],
        [ 'Range reversed'       => sub { (Range => 'bytes=10-5') } ],
        [ 'Range other unit'     => sub { (Range => 'lines=1-2') } ],
        [ 'If-None-Match own'    => sub { ('If-None-Match' => $_[0]{etag}) } ],
        [ 'If-None-Match other'  => sub { ('If-None-Match' => '"x-y"') } ],
        [ 'If-None-Match list'   => sub { ('If-None-Match' => "\"a\", $_[0]{etag}") } ],
        [ 'If-None-Match weak'   => sub { ('If-None-Match' => "W/$_[0]{etag}") } ],
        [ 'If-Modified-Since LM' => sub { ('If-Modified-Since' => $_[0]{lm}) } ],
        [ 'If-Modified-Since old'=> sub { ('If-Modified-Since' => $old) } ],
        [ 'If-Modified-Since future' => sub { ('If-Modified-Since' => $future) } ],
        [ 'If-Modified-Since garbage' => sub { ('If-Modified-Since' => 'yesterday') } ],
        [ 'If-Unmodified-Since old' => sub { ('If-Unmodified-Since' => $old) } ],
        [ 'If-Unmodified-Since LM' => sub { ('If-Unmodified-Since' => $_[0]{lm}) } ],
        [ 'If-Match own'         => sub { ('If-Match' => $_[0]{etag}) } ],
        [ 'If-Match other'       => sub { ('If-Match' => '"x-y"') } ],
        [ 'If-Match star'        => sub { ('If-Match' => '*') } ],
        [ 'If-Match weak own'    => sub { ('If-Match' => "W/$_[0]{etag}") } ],
        [ 'INM own + IMS old'    => sub { ('If-None-Match' => $_[0]{etag},
                                           'If-Modified-Since' => $old) } ],
        [ 'INM other + IMS LM'   => sub { ('If-None-Match' => '"x-y"',
                                           'If-Modified-Since' => $_[0]{lm}) } ],
        [ 'If-Range own ETag'    => sub { (Range => 'bytes=0-9',
                                           'If-Range' => $_[0]{etag}) } ],
        [ 'If-Range other ETag'  => sub { (Range => 'bytes=0-9',
                                           'If-Range' => '"x-y"') } ],
        [ 'If-Range LM date'     => sub { (Range => 'bytes=0-9',
                                           'If-Range' => $_[0]{lm}) } ],
        [ 'If-Range old date'    => sub { (Range => 'bytes=0-9',
                                           'If-Range' => $old) } ],
    );
    my $norm = sub {
        my ($res) = @_;
        my $ct = $res->header('Content-Type') // '';
        my $c = $res->content;
        if ($ct =~ /boundary=("?)([^";]+)\1/) {
            my $b = $2;
            $c =~ s/\Q$b\E/BOUNDARY/g;
            $ct =~ s/\Q$b\E/BOUNDARY/g;
        }
        $ct =~ s/;\s*charset=[^;]*//i unless $res->code == 206;
        return {
            status          => $res->code,
            'Content-Range' => scalar $res->header('Content-Range'),
            'Content-Length'=> $res->code =~ /^(200|206)$/
                               ? scalar $res->header('Content-Length') : 'n/a',
            'Content-Type'  => $res->code =~ /^(200|206)$/ ? $ct : 'n/a',
            body            => $res->code =~ /^(200|206)$/ ? $c : 'n/a',
        };
    };
    for my $case (@cases) {
        my ($name, $hdrs) = @$case;
        my $got  = req(GET => $key,    undef, $hdrs->($val{cs}));
        my $want = req(GET => $static, undef, $hdrs->($val{static}));
        is_deeply $norm->($got), $norm->($want),
            "$name: same answer as Apache's static file handler"
            or diag "cluster:\n" . $got->request->as_string . $got->headers->as_string
                  . "static:\n" . $want->request->as_string . $want->headers->as_string;
        if ($got->code == 304 || $got->code == 206) {
            is $got->header('ETag'), $etag, "$name: the " . $got->code
                . " carries the ETag";
        }
    }
}

# ---------------------------------------------------------------- PUT
# If-None-Match: * on an existing key.
$r = req(PUT => $key, "must not be stored\n", 'If-None-Match' => '*');
is $r->code, 412, 'PUT If-None-Match: * on an existing key is 412';
$r = req(GET => $key);
is $r->content, $body, 'the content is unchanged';
is $r->header('X-ClusterStorage-Version'), $ver, 'the version is unchanged';

# If-None-Match: * on a new key.
my $new = '/files/' . unique_key('cond-new') . '.txt';
$r = req(PUT => $new, "fresh\n", 'If-None-Match' => '*');
is $r->code, 201, 'PUT If-None-Match: * on a new key is 201';
is req(GET => $new)->content, "fresh\n", 'and stores the bytes';
$r = req(PUT => $new, "second\n", 'If-None-Match' => '*');
is $r->code, 412, 'a second If-None-Match: * PUT on it is 412';
is req(GET => $new)->content, "fresh\n", 'and the first bytes stay';

# If-Match with the current ETag.
my $body2 = "version two\n";
$r = req(PUT => $key, $body2, 'If-Match' => $etag);
is $r->code, 204, 'PUT with If-Match: current ETag is 204';
my $etag2 = $r->header('ETag');
my $ver2  = $r->header('X-ClusterStorage-Version');
isnt $etag2, $etag, 'the new version has a new ETag';
ok defined $ver2 && $ver2 > $ver, 'the version rises';

# If-Match with the stale ETag: 412, nothing changes.
$r = req(PUT => $key, "lost update\n", 'If-Match' => $etag);
is $r->code, 412, 'PUT with a stale If-Match is 412';
$r = req(GET => $key);
is $r->content, $body2, 'GET still returns the bytes of the current version';
is $r->header('X-ClusterStorage-Version'), $ver2, 'and its version';
is $r->header('ETag'), $etag2, 'and its ETag';

# The stale ETag no longer matches on GET either.
$r = req(GET => $key, undef, 'If-None-Match' => $etag);
is $r->code, 200, 'If-None-Match with the old ETag is 200 after a new PUT';
is $r->content, $body2, 'and sends the new bytes';

# If-Match: * on an absent key.
my $absent = '/files/' . unique_key('cond-absent') . '.txt';
$r = req(PUT => $absent, "x\n", 'If-Match' => '*');
is $r->code, 412, 'PUT If-Match: * on an absent key is 412';
is req(GET => $absent)->code, 404, 'and the key stays absent';
ok !-e storage_root() . $absent, 'and nothing is on disk';

# If-Match: * on an existing key is fine.
my $body3 = "version three\n";
$r = req(PUT => $key, $body3, 'If-Match' => '*');
is $r->code, 204, 'PUT If-Match: * on an existing key is 204';
my $etag3 = $r->header('ETag');

# ---------------------------------------------------------------- DELETE
$r = req(DELETE => $key, undef, 'If-Match' => $etag2);
is $r->code, 412, 'DELETE with a stale If-Match is 412';
$r = req(GET => $key);
is $r->code, 200, 'the key is still there';
is $r->content, $body3, 'with its bytes';
ok -f storage_root() . $key, 'and the local copy is still on disk';

$r = req(DELETE => $key, undef, 'If-Match' => $etag3);
is $r->code, 204, 'DELETE with the current If-Match is 204';
is req(GET => $key)->code, 404, 'and the key is gone';

# After a DELETE, If-None-Match: * allows a new PUT.
$r = req(PUT => $key, $body, 'If-None-Match' => '*');
is $r->code, 201, 'PUT If-None-Match: * after DELETE is 201';

is_deeply [tmp_files()], [], 'no temp file stays behind';

done_testing;
