# A GET of a large key that the node lacks is streamed: the bytes go to
# the client as they arrive from the holder, before the whole file is
# there, but the answer is never complete before the copy was verified.
# The last 64 KiB wait for the SHA-256; when no holder gives bytes that
# match, the connection is closed short of the Content-Length, which
# every HTTP client reports as a failed answer.  When one holder's bytes
# turn out wrong and another holder's are right, the answer completes
# only if what was already sent is what the good holder has.
#
# Here A's copies rot in place (same size, same mtime: only their bytes
# tell); C holds good copies; B lacks them and is asked.  A is tried
# first (holders come by node name), so its bytes are what B streams.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF sockaddr_in inet_aton);

my $noscrub = sub { $_[0] .= "\nClusterStorageScrubRate Off\n" };
my ($A, $B, $C) = map { CSNode->new("r67$_", replicas => 1,
                                    edit => $noscrub)->start } qw(a b c);

my $size = 4 * 1024 * 1024;
sub body_for { my ($seed) = @_;
    my $block = join '', map { chr(($_ * 7 + $seed * 31) % 256) } 1 .. 4096;
    return $block x ($size / 4096) }

# A GET answered as it came: status, Content-Length, the body's length,
# its SHA-256 and whether the server closed the connection.
sub raw_get {
    my ($node, $key) = @_;
    my ($port) = $node->url =~ /:(\d+)$/;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 30) or die "connect: $!";
    print $s "GET $key HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    my $buf = '';
    my ($status, $len, $head_end);
    while (1) {
        my $got = sysread($s, $buf, 1 << 20, length $buf);
        last unless $got;   # EOF (closed) or error
        if (!defined $head_end && (my $i = index($buf, "\r\n\r\n")) >= 0) {
            $head_end = $i + 4;
            ($status) = $buf =~ m{^HTTP/1\.1 (\d{3})};
            ($len) = substr($buf, 0, $i) =~ /^Content-Length:\s*(\d+)/mi;
        }
        last if defined $head_end && defined $len
                && length($buf) - $head_end >= $len;
    }
    close $s;
    my $body = defined $head_end ? substr($buf, $head_end) : '';
    return ($status // 0, $len // -1, length $body, sha256_hex($body));
}

sub log_of { my ($node) = @_; local (@ARGV, $/) = $node->error_log; <> // '' }
sub disk_sha { my ($node, $key) = @_;
    open my $fh, '<:raw', $node->root . $key or return '';
    local $/; my $d = <$fh>; return sha256_hex($d // '') }

# Rot n bytes of A's copy at offset, keeping its size and mtime.
sub rot {
    my ($key, $offset) = @_;
    my $path = $A->root . $key;
    my $ref = "$ENV{CS_STATE_DIR}/r67.ref";
    system('touch', '-r', $path, $ref) == 0 or die 'touch -r';
    open my $fh, '+<:raw', $path or die "$path: $!";
    seek $fh, $offset, 0;
    print $fh 'X' x 16;
    close $fh;
    system('touch', '-m', '-r', $ref, $path) == 0 or die 'touch -m -r';
    unlink $ref;
}

# Keys on A, and for the damaged ones a good copy on C too.
my %key;
for my $case (qw(plain tail early)) {
    my $k = '/files/' . unique_key("big-$case") . '.bin';
    my $body = body_for(length $case);
    is req(PUT => $A->url . $k, $body)->code, 201, "PUT $k (4 MiB) on A";
    $key{$case} = { key => $k, sha => sha256_hex($body) };
    next if $case eq 'plain';
    is req(GET => $C->url . $k)->code, 200, "C fetched $case";
    my @h;
    ok wait_for(20, sub { @h = $A->live_holders($k); @h == 2 }),
        "$case is held by A and C" or diag "holders: @h";
}

# 1. One good holder: B streams it; the client gets all of it, right.
{
    my $k = $key{plain}{key};
    my ($st, $len, $got, $sha) = raw_get($B, $k);
    is $st, 200, 'plain: 200';
    is $got, $size, 'plain: the whole body';
    is $sha, $key{plain}{sha}, 'plain: the right bytes';
    my ($sent) = log_of($B) =~ /CS159: \Q$k\E: (\d+) of \d+ bytes went/;
    ok $sent && $sent > 0 && $sent <= $size - 65536,
        'plain: bytes went to the client as they arrived, the last 64 KiB '
        . 'only from the verified copy (CS159: ' . ($sent // 'none') . ')';
}

# 2. A's copy is wrong in its last 64 KiB (never sent before the check):
# what was sent is right, C's transfer begins with the same bytes, and
# the answer completes.
{
    my $k = $key{tail}{key};
    rot($k, $size - 1000);
    my ($st, $len, $got, $sha) = raw_get($B, $k);
    is $st, 200, 'tail: 200';
    is $got, $size, 'tail: the whole body';
    is $sha, $key{tail}{sha}, 'tail: the right bytes';
    like log_of($B), qr/CS051: fetching \Q$k\E v\d+ from r67a/,
        'tail: the transfer from A failed its check';
    is disk_sha($B, $k), $key{tail}{sha}, "tail: B's copy is the good one";
}

# 3. A's copy is wrong early, in bytes B already sent: they do not match
# C's, so the answer is cut short, never completed with those bytes.
{
    my $k = $key{early}{key};
    rot($k, 300_000);
    my ($st, $len, $got, $sha) = raw_get($B, $k);
    is $st, 200, 'early: the head was sent (200) before the bytes were known';
    is $len, $size, 'early: it announced the whole length';
    cmp_ok $got, '<', $size, "early: the client got less than that ($got)";
    like log_of($B), qr/CS160: \Q$k\E: \d+ bytes were sent .*do not match/,
        'early: B says it closed the connection short (CS160)';
    is disk_sha($B, $k), $key{early}{sha}, "early: B's copy is the good one";
    # The next GET is a hit on B's verified copy.
    my ($st2, $len2, $got2, $sha2) = raw_get($B, $k);
    is_deeply [$st2, $got2, $sha2], [200, $size, $key{early}{sha}],
        'early: asked again, B serves the whole right file';
}

# 4. A client that reads nothing: B stops feeding it once its writes
# block, so the transfer (the key lock, the peer connection) does not wait
# for it; the copy is in place while the client has read nothing, and
# the client then gets all of it from the file.
{
    my $big = 16 * 1024 * 1024;
    my $k = '/files/' . unique_key('big-slow') . '.bin';
    my $body = body_for(5) x 4;
    is req(PUT => $A->url . $k, $body)->code, 201, 'PUT 16 MiB on A';
    my ($port) = $B->url =~ /:(\d+)$/;
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    # A small receive window, so that B's writes block soon.
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 16384) or die "SO_RCVBUF: $!";
    connect($s, sockaddr_in($port, inet_aton('127.0.0.1'))) or die "connect: $!";
    syswrite($s, "GET $k HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    ok wait_for(30, sub { -e $B->root . $k }),
        'slow: B has its copy in place while the client has read nothing';
    my $buf = '';
    1 while sysread($s, $buf, 1 << 20, length $buf);
    close $s;
    my $i = index($buf, "\r\n\r\n");
    my $got = $i >= 0 ? substr($buf, $i + 4) : '';
    is length($got), $big, 'slow: then it reads the whole body';
    is sha256_hex($got), sha256_hex($body), 'slow: the right bytes';
    like log_of($B), qr/CS159: \Q$k\E: \d+ of $big bytes/,
        'slow: part streamed, the rest from the file (CS159)';
}

# Behind a filter that changes the bytes (mod_deflate drops the
# Content-Length, and would close a cut answer as if it were whole), a
# copy is not streamed: the answer waits for the verified copy.
{
    my $deflate = sub { $_[0] .= "\nLoadModule deflate_module "
        . "$ENV{CS_APACHE_MODULES}/mod_deflate.so\nSetOutputFilter DEFLATE\n"
        . "ClusterStorageScrubRate Off\n" };
    my $D = CSNode->new('r67d', replicas => 1, edit => $deflate)->start;
    my $k = $key{plain}{key};
    my $r = req(GET => $D->url . $k, undef, 'Accept-Encoding' => 'gzip');
    is $r->code, 200, 'deflate: 200';
    is $r->header('Content-Encoding'), 'gzip', 'deflate: gzip encoded';
    is sha256_hex($r->decoded_content(charset => 'none')), $key{plain}{sha},
        'deflate: the right bytes once decoded';
    unlike log_of($D), qr/CS159/, 'deflate: not streamed';
    $D->stop;
}

# A GET with a Range is not streamed: it is answered from the copy.
{
    my $k = '/files/' . unique_key('big-range') . '.bin';
    my $body = body_for(9);
    is req(PUT => $A->url . $k, $body)->code, 201, 'PUT a fourth key on A';
    my $r = req(GET => $B->url . $k, undef, Range => 'bytes=100-199');
    is $r->code, 206, 'Range on a key B lacks: 206';
    is $r->content, substr($body, 100, 100), 'Range: the right 100 bytes';
    unlike log_of($B), qr/CS159: \Q$k\E/, 'Range: not streamed';
}

done_testing;
